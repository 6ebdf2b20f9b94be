#pragma once

// The demo's Kubernetes API server: plain HTTP/1.1 (what a kubeconfig with an http:// server,
// e.g. `kubectl proxy`, speaks), LIST and WATCH of Services and EndpointSlices, cluster-wide and
// per namespace, from an ObjectStore. Kept-alive connections (a client may LIST, then WATCH on
// the same connection), watches as chunked streams of event lines that stay open until their
// timeoutSeconds, with BOOKMARKs when asked for, and the change events as the store changes.
// A bearer token, when set, is required (401 otherwise).
//
// Small on purpose: one thread per connection, blocking I/O. Not a general server: GET only, no
// Accept negotiation (JSON only), no pagination (`limit` is ignored, so every LIST is complete).

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/time.h"
#include "lab/kube_objects.h"

namespace h2mesh::lab {

class KubeApiServer {
 public:
  struct Settings {
    std::string token;  // "" accepts any request
    Duration bookmark_interval = std::chrono::seconds(10);
    int default_watch_seconds = 1800;  // a watch without timeoutSeconds
  };

  // Serves on `listen_fd` (bound and listening, e.g. made in a lab namespace; the server owns it
  // from now on) from `store`, which outlives the server. Starts the accept thread.
  KubeApiServer(ObjectStore& store, int listen_fd, Settings settings);
  // Stops: closes the listener, ends every connection (open watches are cut) and joins the
  // threads.
  ~KubeApiServer();
  KubeApiServer(const KubeApiServer&) = delete;
  KubeApiServer& operator=(const KubeApiServer&) = delete;

  uint16_t port() const { return port_; }
  // Requests answered so far (LISTs and WATCHes), for tests and the demo's log.
  uint64_t lists() const { return lists_; }
  uint64_t watches() const { return watches_; }

 private:
  void accept_loop();
  void serve(int fd);
  // Answers one request; false when the connection must close.
  bool answer(int fd, const std::string& head);
  bool watch(int fd, const ApiQuery& q);

  ObjectStore& store_;
  const Settings settings_;
  int listen_fd_;
  int wake_fd_;  // eventfd: stops the accept loop
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> lists_{0}, watches_{0};

  std::mutex mu_;
  std::set<int> open_fds_;                // connections, shut down on stop
  std::vector<std::thread> connections_;  // joined on stop
  std::thread acceptor_;
};

}  // namespace h2mesh::lab
