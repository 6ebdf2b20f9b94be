#pragma once

#include <map>
#include <string>
#include <vector>

namespace h2mesh::server {

// `h2mesh demo`: 4 greeter backends, one client making `calls` calls over one HTTP/2
// connection, first through a per-connection (L4) balancer, then through h2mesh. Prints both
// runs' per-backend counts side by side, stops everything it started. Returns the exit code.
int run_demo(int calls);

// `h2mesh demo --mesh` (root; mesh_demo.cc): the same story in network namespaces, with a
// ClusterIP, kube-proxy's DNAT and the unchanged client, without and with the sidecar.
int run_mesh_demo(int calls);

// What one `greeter call` run printed: replies per backend id and failed calls.
struct Run {
  std::map<std::string, int> per_backend;
  std::vector<std::string> sample;  // the first reply lines
  int failed = 0;
};
Run count_replies(const std::string& client_output);

// The before/after table of both demos: one row per id, then "failed".
struct TableColumns {
  const char* row;
  const char* before;
  const char* after;
};
void print_table(const TableColumns& columns, const std::vector<std::string>& ids,
                 const Run& before, const Run& after);

}  // namespace h2mesh::server
