#pragma once

// `h2mesh wait-ready`: waits until an h2mesh admin server answers GET /ready with 200. The
// legacy sidecar's postStart hook runs it, so that the kubelet starts the app container only
// once the proxy can carry its calls; tests use it to wait for a proxy they started.

#include "config/config.h"

namespace h2mesh::server {

// Polls http://`admin`/ready (a short interval; each attempt bounded by what is left) until it
// answers 200, or until `timeout` has passed. True when it did. Blocking; main thread.
bool wait_ready(const config::SocketAddress& admin, config::Millis timeout);

}  // namespace h2mesh::server
