#pragma once

#include <memory>
#include <vector>

#include "cluster/host_set.h"
#include "common/intrusive_list.h"
#include "net/event_loop.h"
#include "proxy/stats.h"
#include "proxy/upstream.h"
#include "proxy/worker_context.h"

namespace h2mesh::proxy {

// HTTP/2 connections from one worker to one endpoint. A call goes to a ready connection with a
// free stream slot; when every connection is at the backend's SETTINGS_MAX_CONCURRENT_STREAMS
// another one is opened (up to max_connections_per_endpoint) and calls wait in a bounded queue.
// After a failed connect the pool is in backoff: it reconnects in the background with
// exponential backoff and jitter, and calls given to it meanwhile fail at once.
class ConnPool {
 public:
  ConnPool(WorkerContext& ctx, const cluster::Host& host, const config::Cluster& settings,
           ClusterStats& cluster_stats, EndpointStats& stats);
  ~ConnPool();

  // Starts `req` on a connection now, queues it, or fails it (possibly before returning).
  void attach(UpstreamRequest* req);
  void detach(UpstreamRequest* req);  // leaves the pending queue

  // False while reconnecting after a failed connect with no working connection left: the
  // balancer should prefer other endpoints.
  bool available() const { return !in_backoff_ || any_ready(); }
  bool any_ready() const;
  // The host left the cluster: no new calls; connections close when their calls end.
  void drain();
  bool drained() const {
    return draining_ && conns_.empty() && pending_.empty() && active_calls_ == 0;
  }

  // Outcome of one attempt on this endpoint, for passive outlier detection.
  void note_outcome(bool failure);
  bool is_failure_status(int grpc_status) const;

  // In-flight calls on this endpoint. `slot` mirrors the count into the cluster's LB array.
  void call_started();
  void call_ended();
  void set_active_slot(uint32_t* slot);
  uint32_t active_calls() const { return active_calls_; }

  const cluster::Host& host() const { return host_; }
  const config::Cluster& settings() const { return settings_; }
  // A reload changed the cluster's settings: they apply from the next connection and call.
  void update_settings(const config::Cluster& settings) { settings_ = settings; }
  // How the next connections are opened: `connector` (a cluster's TLS), or the worker's
  // ctx.connector when null. Connections open already keep theirs.
  void set_connector(std::shared_ptr<net::Connector> connector) { connector_ = std::move(connector); }
  EndpointStats& stats() { return stats_; }
  WorkerContext& ctx() { return ctx_; }
  std::function<void()> on_drained;  // set by the cluster manager

  // --- from UpstreamConnection ---
  void on_connection_ready(UpstreamConnection* conn);
  void on_slot_free(UpstreamConnection* conn);
  void on_connection_closed(UpstreamConnection* conn, const Error& why, bool was_ready);
  // The options of the next connection: the worker's current buffers settings (a connection
  // keeps the windows it was opened with).
  http2::SessionOptions session_options() const;

 private:
  void dispatch_pending();
  // Opens another connection unless one is on its way or the limit is reached.
  void maybe_connect();
  UpstreamConnection* connection_with_slot();
  void connect();
  void enter_backoff(const Error& why);
  void fail_pending(const Error& why);

  WorkerContext& ctx_;
  cluster::Host host_;
  config::Cluster settings_;
  ClusterStats& cluster_stats_;
  EndpointStats& stats_;
  std::vector<std::unique_ptr<UpstreamConnection>> conns_;
  IntrusiveList<UpstreamRequest, &UpstreamRequest::pool_node> pending_;
  uint32_t connecting_ = 0;
  uint32_t active_calls_ = 0;
  uint32_t failure_streak_ = 0;
  uint32_t* active_slot_ = nullptr;
  bool in_backoff_ = false;
  bool draining_ = false;
  bool destroying_ = false;
  Duration backoff_{};
  Error last_error_;
  std::shared_ptr<net::Connector> connector_;
  net::Timer backoff_timer_;
};

}  // namespace h2mesh::proxy
