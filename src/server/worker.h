#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cluster/host_set.h"
#include "config/config.h"
#include "net/event_loop.h"
#include "net/tls_context.h"
#include "observe/access_log.h"
#include "observe/trace_observer.h"
#include "proxy/cluster_manager.h"
#include "proxy/downstream.h"
#include "proxy/mesh_table.h"
#include "proxy/protocol_detect.h"
#include "proxy/tcp_relay.h"
#include "proxy/router.h"
#include "proxy/worker_context.h"

namespace h2mesh::server {

// How a listener's `tls` settings become a server context: ALPN is required (a client offering
// ALPN without h2 fails the handshake).
net::TlsServerSettings listener_tls_settings(const config::ListenerTls& tls);

// One data-path thread: its own event loop, its SO_REUSEPORT listener sockets, its client
// connections, its upstream pools and its LB state. The main thread talks to it only through
// the post_* methods, which are thread-safe and carry values or immutable snapshots.
class Worker {
 public:
  // `listener_fds[i]` belongs to config->listeners[i]; the worker takes ownership.
  // `report_outlier` runs on this worker's thread and must hand the report to the main thread.
  // `outbound_fds`: this worker's sockets of the mesh's outbound port (mesh mode; else empty).
  // `inbound_fds`: its sockets of the inbound port; `mesh_tls` the mesh's server context (made
  // and owned by this worker from the config's mesh.tls; null without mesh mTLS).
  Worker(int index, uint32_t worker_count, std::shared_ptr<const config::Config> config,
         std::vector<int> listener_fds,
         const std::vector<cluster::ClusterSnapshotPtr>& snapshots,
         std::function<void(const std::string&, const std::string&)> report_outlier,
         std::vector<int> outbound_fds = {}, std::vector<int> inbound_fds = {},
         std::unique_ptr<net::TlsContext> mesh_tls = nullptr);
  ~Worker();

  void start();
  void stop_and_join();

  // Thread-safe.
  void post_snapshot(cluster::ClusterSnapshotPtr snapshot);
  // Mesh mode: the Services' table (proxy/mesh_table.h).
  void post_mesh(proxy::MeshTablePtr table);
  // A reloaded config. `fds[i]` is this worker's socket for config->listeners[i]: sockets it
  // already has are kept, new ones are adopted, the others are closed.
  void post_config(std::shared_ptr<const config::Config> config, std::vector<int> fds);
  // Stops accepting, drains every client connection; `done` runs on the worker thread once the
  // last one is closed.
  void post_drain(std::function<void()> done);
  // Closes every remaining client connection now (drain deadline passed).
  void post_force_close();
  // `reply` runs on the worker thread with a copy of the counters.
  void post_collect(std::function<void(proxy::WorkerStats)> reply);
  // Rate limits (server/rate_limit_coordinator.h). `reply` runs on the worker thread with this
  // worker's demand and tokens per limit of `config`, or nothing when the worker runs another
  // config (a reload crossed the request).
  void post_rate_limit_collect(std::shared_ptr<const config::Config> config,
                               std::function<void(std::vector<proxy::WorkerDemand>)> reply);
  // Tracing (observe/): this worker's tracer, or null to turn tracing off. set_tracer before
  // start(); post_tracer after (thread-safe), `done` then runs on the worker thread once calls
  // starting from now on use it (the old tracer is gone by then).
  void set_tracer(std::unique_ptr<observe::TraceObserver> tracer);
  void post_tracer(std::unique_ptr<observe::TraceObserver> tracer, std::function<void()> done);
  // New shares per limit of `config`; ignored when the worker runs another config.
  void post_rate_limit_shares(std::shared_ptr<const config::Config> config,
                              std::vector<proxy::RateShare> shares);
  // The access log: from now on this worker's calls are logged with `format` into `ring` (owned
  // by the main thread's AccessLogWriter, which outlives the worker); a null format: not at all.
  // `done` (may be empty) runs on the worker thread once the change is made.
  void post_access_log(std::shared_ptr<const observe::LineFormat> format, observe::LineRing* ring,
                       std::function<void()> done = {});

 private:
  class Listener;
  // `transport`: the connection's TLS transport, or null for clear text over `fd`. `inbound`: a
  // connection arriving at the pod through the mesh's inbound port.
  void accept_connection(int fd, const proxy::ListenerContextPtr& listener,
                         std::unique_ptr<net::Transport> transport, bool inbound = false);
  // Mesh mode: a connection redirected to the outbound port. Balanced per call when it goes to
  // a Service's cluster IP and speaks HTTP/2; relayed as TCP to where it was going otherwise.
  void accept_outbound(int fd);
  void start_relay(int fd, const config::SocketAddress& destination);
  void start_mesh_connection(int fd, const config::SocketAddress& destination);
  // Mesh mode: a connection redirected to the inbound port (arriving at the pod). The first
  // bytes decide: a TLS ClientHello is mesh mTLS, terminated here; clear text is accepted
  // (permissive) or closed (strict). HTTP/2 goes to the app per call, the rest is relayed.
  void accept_inbound(int fd);
  // Reads the first bytes of `fd` (at most `wait`), then hands its protocol to `then`, unless
  // the worker started draining meanwhile (the socket is closed).
  void detect(int fd, config::Millis wait, std::function<void(proxy::Protocol)> then);
  void start_inbound(int fd, const config::SocketAddress& destination, proxy::Protocol protocol);
  // The context of the calls to the app at `destination` (its pod IP and port): a one-endpoint
  // cluster of this worker, made on the first connection to it.
  proxy::ListenerContextPtr inbound_context(const config::SocketAddress& destination);
  // The context of a Service's calls on this worker: one per Service, so that its retry budget
  // is shared by its connections.
  proxy::ListenerContextPtr mesh_context(const proxy::MeshRoute& route);
  void remove_connection(proxy::DownstreamConnection* conn);
  void check_drained();

  int index_;
  uint32_t worker_count_;
  std::shared_ptr<const config::Config> config_;
  net::EventLoop loop_;
  proxy::WorkerContext ctx_;
  std::unique_ptr<observe::AccessLogObserver> access_log_;  // in ctx_.call_observers when set
  proxy::ClusterManager clusters_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<proxy::DownstreamConnection*, std::unique_ptr<proxy::DownstreamConnection>>
      connections_;
  std::vector<std::unique_ptr<Listener>> outbound_;
  std::vector<std::unique_ptr<Listener>> inbound_;
  std::unique_ptr<net::TlsContext> mesh_tls_;
  std::unordered_map<std::string, proxy::ListenerContextPtr> inbound_contexts_;  // by address
  std::unordered_map<int, std::unique_ptr<proxy::ProtocolDetector>> detecting_;  // by socket
  std::unordered_map<uint64_t, std::unique_ptr<proxy::TcpRelay>> relays_;
  uint64_t next_relay_id_ = 0;
  struct MeshContext {
    const config::MeshServiceSettings* settings = nullptr;  // the route's, when it was made
    proxy::ListenerContextPtr context;
  };
  std::unordered_map<std::string, MeshContext> mesh_contexts_;  // by cluster
  log::Limiter mesh_log_{seconds(1)};
  http2::SessionOptions downstream_opts_;
  std::unique_ptr<observe::TraceObserver> tracer_;  // in ctx_.call_observers while set
  std::function<void()> on_drained_;
  bool draining_ = false;
  std::thread thread_;
};

}  // namespace h2mesh::server
