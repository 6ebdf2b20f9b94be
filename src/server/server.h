#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_server.h"
#include "admin/dashboard.h"
#include "admin/render.h"
#include "cluster/registry.h"
#include "discovery/resolver.h"
#include "config/config.h"
#include "config/mesh_flags.h"
#include "net/event_loop.h"
#include "observe/trace_exporter.h"
#include "server/config_watcher.h"
#include "server/mesh_controller.h"
#include "server/rate_limit_coordinator.h"
#include "server/worker.h"

namespace h2mesh::server {

// The main thread: owns the config, the workers, the admin server and signal handling.
// Publishes cluster snapshots to the workers and drives graceful shutdown.
class Server {
 public:
  // `config_path` is re-read on SIGHUP and when the file changes.
  // `config_path` may be empty (mesh mode without a file): nothing to reload then. `mesh_flags`
  // (run --mesh) are applied again to every reloaded config.
  Server(config::Config config, std::string config_path,
         std::optional<config::MeshFlags> mesh_flags = std::nullopt);
  ~Server();
  // Binds every socket, starts the workers, serves until SIGTERM/SIGINT and the drain finished.
  // Returns the process exit code.
  int run();

 private:
  class SignalHandler;
  // Sockets of one listener, one per worker (SO_REUSEPORT).
  struct BoundListener {
    std::string name;
    std::string address;  // as configured (port 0 stays 0: it names the same listener)
    std::vector<int> fds;
  };
  bool bind_listener(const config::Listener& listener, size_t workers, BoundListener* out);
  // Mesh mode: the outbound port (or, `inbound`, the inbound port) on 0.0.0.0 and, when the
  // host has IPv6, on [::]; one socket per worker and address. False when it cannot be bound.
  bool bind_outbound(size_t workers, std::vector<std::vector<int>>* fds, bool inbound);
  // Mesh mode, before the workers start: whether the interception rules would send h2mesh's
  // own outgoing connections back to its outbound port (it runs as a uid the rules do not
  // exclude), by dialling an address that is never routed.
  bool own_traffic_redirected() const;
  void start_discovery();
  // Drops pages only start-up needed (common/memory_trim.h). Once: a reload does not repeat it,
  // so the workers' hot pages are not dropped under load.
  void release_startup_memory();
  void reload(const char* trigger);
  // Tracing (observe/): starts the exporter and gives each worker its tracer when the config
  // has `tracing:`; on reload, when the block changed, replaces both (`before`: the old block).
  void start_tracing();
  void reconfigure_tracing(const config::Tracing& before);
  bool discovery_synced(std::string* why) const;
  // Every worker's counters added up, handed to `done` on the main thread.
  void collect(std::function<void(proxy::WorkerStats)> done);
  void handle_admin(const std::string& method, const std::string& path, const std::string& query,
                    admin::AdminServer::Reply reply);
  // The registry's endpoint health, and in mesh mode the Services' whose cluster `called` names
  // (the views show only the Services some worker called).
  admin::HealthView admin_health(const std::function<bool(const std::string&)>& called) const;
  void begin_shutdown(const char* why);
  // The access log (observe/access_log.h). `open_access_log` opens the output `next` needs when
  // it is not the running one's (*fd stays -1 otherwise); false with *error when it cannot.
  // Before config_ is replaced.
  // `apply_access_log` starts, changes or stops the log after config_ became the new config.
  bool open_access_log(const std::optional<config::AccessLog>& next, int* fd, std::string* error);
  void apply_access_log(const std::optional<config::AccessLog>& before, int fd);
  void reopen_access_log();  // SIGUSR1
  void on_worker_drained();

  std::shared_ptr<const config::Config> config_;
  net::EventLoop loop_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<cluster::ClusterRegistry> registry_;
  std::unique_ptr<MeshController> mesh_;
  std::optional<config::MeshFlags> mesh_flags_;
  struct ResolverEntry {
    config::Discovery settings;
    std::unique_ptr<discovery::Resolver> resolver;
  };
  std::map<std::string, ResolverEntry> resolvers_;  // by cluster
  std::vector<BoundListener> bound_;
  std::string config_path_;
  std::unique_ptr<ConfigWatcher> watcher_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<admin::Dashboard> dashboard_;  // /live.json's sampling (with admin_)
  std::unique_ptr<RateLimitCoordinator> rate_limits_;
  std::unique_ptr<SignalHandler> signals_;
  // Made when a config first turns the access log on; outlives the workers (their rings).
  std::unique_ptr<observe::AccessLogWriter> access_log_;
  uint64_t access_log_changes_ = 0;  // so that a late "workers stopped logging" is ignored
  std::unique_ptr<observe::TraceExporter> tracing_;
  // Exporters a reload replaced, kept until every worker has its new tracer (tracing_acks_).
  std::vector<std::unique_ptr<observe::TraceExporter>> retired_tracing_;
  size_t tracing_acks_ = 0;
  std::unique_ptr<net::Timer> drain_deadline_;
  size_t workers_drained_ = 0;
  bool shutting_down_ = false;
  bool serving_ = false;
};

}  // namespace h2mesh::server
