#include "proxy/conn_pool.h"

#include <algorithm>

#include "common/log.h"

namespace h2mesh::proxy {

ConnPool::ConnPool(WorkerContext& ctx, const cluster::Host& host, const config::Cluster& settings,
                   ClusterStats& cluster_stats, EndpointStats& stats)
    : ctx_(ctx),
      host_(host),
      settings_(settings),
      cluster_stats_(cluster_stats),
      stats_(stats),
      backoff_timer_(ctx.loop, [this] {
        if (!draining_) connect();  // background probe: no call waits on it
      }) {
  stats_.in_snapshot = true;
  stats_.users++;
}

ConnPool::~ConnPool() {
  destroying_ = true;
  fail_pending(make_error(ErrorCode::Draining, "worker shutting down"));
  for (auto& c : conns_) {
    if (!c->closed()) c->close(make_error(ErrorCode::Draining, "pool destroyed"));
  }
  stats_.users--;
}

http2::SessionOptions ConnPool::session_options() const {
  // Read at every connect: a reload's windows apply to the connections opened after it.
  http2::SessionOptions opts;
  opts.stream_window = ctx_.buffers.stream_window_bytes;
  opts.connection_window = ctx_.buffers.connection_window_bytes;
  opts.max_header_list_bytes = settings_.max_header_list_bytes;
  opts.max_header_fields = settings_.max_header_fields;
  return opts;
}

void ConnPool::attach(UpstreamRequest* req) {
  if (UpstreamConnection* c = connection_with_slot()) {
    req->start_on(*c);
    return;
  }
  if (in_backoff_ && !any_ready()) {
    req->fail(make_error(ErrorCode::ConnectFailed, "endpoint " + host_.key +
                                                       " is unavailable (last connect attempt: " +
                                                       last_error_.message + ")"));
    return;
  }
  if (pending_.size() >= settings_.max_pending_calls) {
    cluster_stats_.pending_overflow++;
    // With no queue at all (max_pending_calls 0) a connection must still be opened for later.
    if (pending_.empty()) maybe_connect();
    req->fail(make_error(ErrorCode::Overloaded, "too many calls waiting for a connection to " +
                                                    host_.key + " (max_pending_calls " +
                                                    std::to_string(settings_.max_pending_calls) +
                                                    ")"));
    return;
  }
  pending_.push_back(req);
  dispatch_pending();
}

void ConnPool::detach(UpstreamRequest* req) { pending_.remove(req); }

UpstreamConnection* ConnPool::connection_with_slot() {
  UpstreamConnection* best = nullptr;
  for (auto& c : conns_) {
    // Fill the connection with the fewest free slots first, so spare connections can idle.
    if (c->free_slots() > 0 && (!best || c->free_slots() < best->free_slots())) best = c.get();
  }
  return best;
}

void ConnPool::dispatch_pending() {
  while (!pending_.empty()) {
    UpstreamConnection* c = connection_with_slot();
    if (!c) break;
    pending_.pop_front()->start_on(*c);
  }
  if (pending_.empty()) return;
  maybe_connect();
}

void ConnPool::maybe_connect() {
  if (connecting_ > 0 || in_backoff_ || draining_) return;
  size_t usable = static_cast<size_t>(std::count_if(
      conns_.begin(), conns_.end(), [](const auto& c) { return !c->draining(); }));
  if (usable < settings_.max_connections_per_endpoint) connect();
}

void ConnPool::connect() {
  net::Connector& connector = connector_ ? *connector_ : *ctx_.connector;
  auto transport = connector.connect(ctx_.loop, host_.address);
  if (!transport) {
    stats_.connect_failures++;
    enter_backoff(transport.error());
    return;
  }
  ++connecting_;
  auto timeout = std::chrono::duration_cast<Duration>(settings_.connect_timeout);
  conns_.push_back(
      std::make_unique<UpstreamConnection>(*this, std::move(*transport), session_options(), timeout));
}

void ConnPool::on_connection_ready(UpstreamConnection*) {
  --connecting_;
  if (in_backoff_) LOG_INFO("upstream %s reachable again", host_.key.c_str());
  in_backoff_ = false;
  stats_.in_backoff = false;
  backoff_ = Duration::zero();
  backoff_timer_.cancel();
  dispatch_pending();
}

void ConnPool::on_slot_free(UpstreamConnection*) { dispatch_pending(); }

void ConnPool::on_connection_closed(UpstreamConnection* conn, const Error& why, bool was_ready) {
  if (destroying_) return;
  auto it = std::find_if(conns_.begin(), conns_.end(),
                         [conn](const auto& c) { return c.get() == conn; });
  if (it != conns_.end()) {
    ctx_.loop.defer_delete(std::move(*it));
    conns_.erase(it);
  }
  if (!was_ready) {
    --connecting_;
    if (draining_) {
      fail_pending(why);  // drained before it was ever ready: not a failure of the endpoint
    } else {
      stats_.connect_failures++;
      // Only a failure to reach the endpoint at all says something about its health; a refused
      // extra connection next to working ones does not.
      if (!any_ready()) note_outcome(true);
      LOG_WARN("connect to upstream %s failed: %s", host_.key.c_str(), why.message.c_str());
      enter_backoff(why);
    }
  } else {
    dispatch_pending();
  }
  if (drained() && on_drained) ctx_.loop.defer(on_drained);
}

void ConnPool::enter_backoff(const Error& why) {
  last_error_ = why;
  if (draining_) {
    fail_pending(why);
    return;
  }
  in_backoff_ = true;
  stats_.in_backoff = true;
  Duration base = std::chrono::duration_cast<Duration>(settings_.reconnect_backoff_base);
  Duration max = std::chrono::duration_cast<Duration>(settings_.reconnect_backoff_max);
  backoff_ = backoff_ == Duration::zero() ? base : std::min(backoff_ * 2, max);
  // +-20% jitter so that workers and proxies do not reconnect in lockstep.
  double factor = 0.8 + 0.4 * ctx_.random.unit();
  backoff_timer_.arm(Duration(static_cast<int64_t>(static_cast<double>(backoff_.count()) * factor)));
  if (!any_ready()) fail_pending(why);
}

void ConnPool::fail_pending(const Error& why) {
  Error err{why.code == ErrorCode::ConnectTimeout ? ErrorCode::ConnectTimeout : ErrorCode::ConnectFailed,
            "connect to " + host_.key + " failed: " + why.message};
  while (UpstreamRequest* req = pending_.pop_front()) req->fail(err);
}

bool ConnPool::any_ready() const {
  return std::any_of(conns_.begin(), conns_.end(), [](const auto& c) { return c->ready(); });
}

void ConnPool::drain() {
  draining_ = true;
  stats_.in_snapshot = false;
  backoff_timer_.cancel();
  // Calls still waiting would never get a connection here: they fail as never sent, so a
  // retry can take them to another endpoint.
  fail_pending(make_error(ErrorCode::ConnectFailed, "endpoint removed from the cluster"));
  for (auto& c : conns_) c->drain();
  if (drained() && on_drained) ctx_.loop.defer(on_drained);
}

void ConnPool::note_outcome(bool failure) {
  const auto& od = settings_.outlier_detection;
  if (!od.enabled) return;
  if (!failure) {
    failure_streak_ = 0;
    return;
  }
  if (++failure_streak_ < od.consecutive_failures) return;
  failure_streak_ = 0;
  if (ctx_.report_outlier) ctx_.report_outlier(settings_.name, host_.key);
}

bool ConnPool::is_failure_status(int grpc_status) const {
  const auto& list = settings_.outlier_detection.failure_statuses;
  return std::find(list.begin(), list.end(), grpc_status) != list.end();
}

void ConnPool::call_started() {
  ++active_calls_;
  if (active_slot_) ++*active_slot_;
  stats_.calls.calls_total++;
  stats_.calls.in_flight++;
}

void ConnPool::call_ended() {
  --active_calls_;
  if (active_slot_) --*active_slot_;
  stats_.calls.in_flight--;
  if (drained() && on_drained) ctx_.loop.defer(on_drained);
}

void ConnPool::set_active_slot(uint32_t* slot) {
  active_slot_ = slot;
  if (slot) *slot = active_calls_;
}

}  // namespace h2mesh::proxy
