#pragma once

namespace h2mesh::server {

// `h2mesh demo`: 4 greeter backends, one client making `calls` calls over one HTTP/2
// connection, first through a per-connection (L4) balancer, then through h2mesh. Prints both
// runs' per-backend counts side by side, stops everything it started. Returns the exit code.
int run_demo(int calls);

}  // namespace h2mesh::server
