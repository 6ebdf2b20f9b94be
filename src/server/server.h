#pragma once

#include <memory>
#include <vector>

#include "admin/admin_server.h"
#include "cluster/registry.h"
#include "config/config.h"
#include "net/event_loop.h"
#include "server/worker.h"

namespace h2mesh::server {

// The main thread: owns the config, the workers, the admin server and signal handling.
// Publishes cluster snapshots to the workers and drives graceful shutdown.
class Server {
 public:
  explicit Server(config::Config config);
  ~Server();
  // Binds every socket, starts the workers, serves until SIGTERM/SIGINT and the drain finished.
  // Returns the process exit code.
  int run();

 private:
  class SignalHandler;
  bool bind_listeners(std::vector<std::vector<int>>* per_worker_fds);
  void handle_admin(const std::string& method, const std::string& path,
                    admin::AdminServer::Reply reply);
  void begin_shutdown(const char* why);
  void on_worker_drained();

  std::shared_ptr<const config::Config> config_;
  net::EventLoop loop_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<cluster::ClusterRegistry> registry_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<SignalHandler> signals_;
  std::unique_ptr<net::Timer> drain_deadline_;
  size_t workers_drained_ = 0;
  bool shutting_down_ = false;
  bool serving_ = false;
};

}  // namespace h2mesh::server
