#include "proxy/downstream.h"

#include <algorithm>
#include <cstdio>

#include "common/log.h"
#include "proxy/cluster_manager.h"
#include "proxy/retry.h"
#include "proxy/upstream.h"

namespace h2mesh::proxy {
namespace {

int status_of(const HeaderBlock& headers) {
  auto v = headers.find("grpc-status");
  if (!v) return -1;
  return grpc::parse_status(*v).value_or(-1);
}

constexpr uint32_t kCancel = static_cast<uint32_t>(http2::H2Error::Cancel);

}  // namespace

// ---------------------------------------------------------------------------------------------
// DownstreamStream

DownstreamStream::DownstreamStream(DownstreamConnection& conn, int32_t id)
    : conn_(conn),
      ctx_(conn.ctx()),
      id_(id),
      retry_timer_(ctx_.loop, [this] { start_attempt(); }),
      deadline_timer_(ctx_.loop, [this] { on_deadline(); }) {}

DownstreamStream::~DownstreamStream() {
  // After on_closed (which reported the call) there is no attempt left; a worker torn down with
  // calls running deletes them directly, and their attempts still end here.
  end_attempt();
  upstream_.reset();
  if (endpoint_stats_) endpoint_stats_->users--;
}

CallEvent DownstreamStream::describe() const {
  CallEvent c;
  c.listener = conn_.listener().name;
  c.authority = authority_;
  // "/package.Service/Method"
  if (size_t slash = path_.rfind('/'); slash != std::string_view::npos && slash > 0) {
    c.service = path_.substr(1, slash - 1);
    c.method = path_.substr(slash + 1);
  } else {
    c.method = path_;
  }
  c.grpc_status = final_status_;
  if (route_) c.cluster = route_->cluster;
  c.upstream = upstream_address_;
  c.attempts = attempts_;
  c.start = start_;
  c.end = ctx_.loop.now();
  c.duration = c.end - start_;
  c.upstream_duration = upstream_duration_;
  c.request_bytes = static_cast<int64_t>(req_total_);
  c.response_bytes = static_cast<int64_t>(resp_total_);
  c.trace = trace_;
  c.cluster_stats = cluster_stats_;
  c.endpoint_stats = endpoint_stats_;
  c.listener_stats = &conn_.listener_stats();
  return c;
}

void DownstreamStream::end_attempt() {
  if (!upstream_) return;
  AttemptEvent a;
  a.number = attempts_;
  upstream_address_ = upstream_->pool().host().key;
  a.upstream = upstream_address_;
  a.start = attempt_start_;
  a.end = ctx_.loop.now();
  a.grpc_status = attempt_status_;
  a.error = attempt_error_;
  a.span_id = attempt_span_id_;
  a.cluster_stats = cluster_stats_;
  a.endpoint_stats = endpoint_stats_;
  upstream_duration_ = a.end - a.start;
  if (ctx_.call_observers.size() == 1) {  // the metrics alone: they read only the attempt
    ctx_.call_observers.front()->on_attempt_end(CallEvent{}, a);
    return;
  }
  const CallEvent call = describe();
  for (CallObserver* o : ctx_.call_observers) o->on_attempt_end(call, a);
}

void DownstreamStream::on_request_header(std::string_view name, std::string_view value) {
  if (!headers_done_) {
    req_headers_.add(name, value);
    return;
  }
  if (!req_trailers_) req_trailers_ = std::make_unique<HeaderBlock>();
  req_trailers_->add(name, value);
}

void DownstreamStream::on_request_headers_end(bool end_stream, bool trailers) {
  if (trailers) {
    if (!req_trailers_) req_trailers_ = std::make_unique<HeaderBlock>();  // an empty block
    req_has_trailers_ = true;
    on_request_end();
    return;
  }
  headers_done_ = true;
  req_end_ = end_stream;
  start_ = ctx_.loop.now();
  start_trace();
  route_and_start();
}

void DownstreamStream::on_request_headers_too_large(bool trailers,
                                                    const http2::HeaderOverflow& overflow) {
  ctx_.stats.downstream_header_limit++;
  std::string message = std::string("h2mesh: request ") + (trailers ? "trailers" : "headers") +
                        " with " + overflow.describe();
  LOG_DEBUG("stream %d: %s", id_, message.c_str());
  if (trailers) {
    req_trailers_.reset();
    req_end_ = true;
    send_local_reply(grpc::StatusCode::ResourceExhausted, message);
    return;
  }
  headers_done_ = true;
  // What arrived before the limit is all we keep: enough to tell a gRPC call from another.
  auto type = req_headers_.find("content-type");
  bool grpc = type && type->starts_with("application/grpc");
  req_headers_.clear();
  if (grpc) {
    send_local_reply(grpc::StatusCode::ResourceExhausted, message);
    return;
  }
  discard_request_body();
  const http2::HeaderRef headers[] = {{":status", "431"}};
  auto rv = conn_.session().submit_response(id_, headers, /*has_body=*/false);
  if (!rv) conn_.session().reset_stream(id_, static_cast<uint32_t>(http2::H2Error::InternalError));
  resp_started_ = true;
  resp_end_ = true;
  conn_.schedule_flush();
}

void DownstreamStream::start_trace() {
  // The caller's context is read for the tracer and the access log (its trace_id); with the
  // metrics alone nobody would see it.
  if (!ctx_.trace_sampler && ctx_.call_observers.size() == 1) return;
  std::optional<std::string_view> header = req_headers_.find("traceparent");
  if (observe::TraceSampler* sampler = ctx_.trace_sampler) {
    observe::CallTrace t = observe::start_call_trace(header, *sampler);
    trace_.trace_id = t.trace_id;
    trace_.span_id = t.span_id;
    trace_.parent_span_id = t.parent_span_id;
    trace_.sampled = t.sampled;
    trace_.valid = true;
    // Spans of a continued trace carry the caller's vendor state (W3C Trace Context, and
    // OTLP's Span.trace_state); a new trace has none.
    if (t.continued && t.sampled)
      if (auto state = req_headers_.find("tracestate"); state && observe::tracestate_ok(*state))
        trace_.tracestate = *state;
    return;
  }
  if (!header) return;
  if (auto parent = observe::parse_traceparent(*header)) {
    trace_.trace_id = parent->trace_id;
    trace_.parent_span_id = parent->parent_id;
    trace_.sampled = parent->sampled();
    trace_.valid = true;
  }
}

void DownstreamStream::route_and_start() {
  if (conn_.inbound()) conn_.count_inbound_call();
  // The listener's allow-list (its latest rules: a reload that narrows it applies to the calls
  // of connections already open). Refused before anything else: no routing, no upstream work.
  if (const auto& tls = conn_.rules().listener.tls; tls && !tls->allowed_identities.empty()) {
    if (!conn_.identity_allowed(tls->allowed_identities)) {
      ctx_.stats.tls[conn_.listener().name].authz_denied++;
      send_local_reply(grpc::StatusCode::PermissionDenied,
                       "h2mesh: the client's identity is not allowed on listener " +
                           conn_.listener().name);
      return;
    }
  }
  // A malformed grpc-timeout is refused before any routing or upstream work, as gRPC servers
  // refuse it, rather than running the call without the deadline the client meant to set.
  std::optional<Duration> timeout;
  if (auto t = req_headers_.find("grpc-timeout")) {
    const char* why = "";
    timeout = grpc::parse_timeout(*t, &why);
    if (!timeout) {
      reject_malformed_timeout(*t, why);
      return;
    }
  }
  std::optional<std::string_view> path = req_headers_.find(":path");
  std::optional<std::string_view> authority = req_headers_.find(":authority");
  if (!authority) authority = req_headers_.find("host");
  std::string_view p = path.value_or(std::string_view());
  std::string_view a = authority.value_or(std::string_view());
  path_ = p;
  authority_ = a;
  rules_ = &conn_.rules();
  route_ = rules_->router.match(a, p);
  if (!route_) {
    ctx_.stats.calls_no_route++;
    send_local_reply(grpc::StatusCode::Unimplemented,
                     "h2mesh: no route for " + std::string(p) + " (authority " + std::string(a) + ")");
    return;
  }
  // Over a rate limit: answered here, before any upstream work (no pick, no connection).
  if (const auto* limit = ctx_.rate_limits.admit(conn_.listener().name,
                                                 conn_.router().index_of(*route_), ctx_.loop.now())) {
    send_local_reply(grpc::StatusCode::ResourceExhausted, RateLimits::refusal_message(*limit));
    return;
  }
  cluster_ = ctx_.clusters->find(route_->cluster);
  if (!cluster_) {
    send_local_reply(grpc::StatusCode::Unavailable,
                     "h2mesh: cluster " + route_->cluster + " is not known");
    return;
  }
  cluster_stats_ = ClusterManager::stats(*cluster_);
  if (cluster_stats_) {
    cluster_stats_->calls.calls_total++;
    cluster_stats_->calls.in_flight++;  // until the call's end (MetricsObserver)
  }
  // The call's deadline: the client's grpc-timeout, bounded by the route's max_timeout.
  if (route_->max_timeout.count() > 0) {
    Duration max = std::chrono::duration_cast<Duration>(route_->max_timeout);
    timeout = timeout ? std::min(*timeout, max) : max;
  }
  if (timeout) {
    deadline_ = ctx_.loop.now() + *timeout;
    deadline_timer_.arm_at(*deadline_);
  }
  replayable_ = route_->retry.max_attempts > 1;
  rules_->budget(route_).record_call(ctx_.loop.now());
  start_attempt();
}

void DownstreamStream::reject_malformed_timeout(std::string_view value, const char* why) {
  ctx_.stats.calls_malformed_timeout++;
  // The value is the client's: shown printable and short, in the answer and in the log.
  std::string shown;
  for (char c : value.substr(0, 32)) shown += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
  if (value.size() > 32) shown += "...";
  uint64_t held_back = 0;
  if (ctx_.bad_request_log.allow(ctx_.loop.now(), &held_back)) {
    char more[64] = "";
    if (held_back > 0)
      snprintf(more, sizeof(more), " (%llu more not logged since the last line)",
               static_cast<unsigned long long>(held_back));
    LOG_INFO("downstream: stream %d: malformed grpc-timeout \"%s\" (%s); answered INTERNAL%s", id_,
             shown.c_str(), why, more);
  }
  // What grpc-go's server answers: HTTP 400, INTERNAL, the header named; then RST_STREAM
  // NO_ERROR if the client is still sending its request, so that it stops.
  conn_.session().stop_request_after_response(id_);
  send_local_reply(grpc::StatusCode::Internal,
                   "h2mesh: malformed grpc-timeout \"" + shown + "\": " + why, "400");
}

void DownstreamStream::start_attempt() {
  ++attempts_;
  // Fields of a failed attempt's unfinished response header block are not this attempt's.
  if (!resp_has_trailers_) resp_headers_.clear();
  Error why;
  ConnPool* pool = ctx_.clusters->pick(*cluster_, &why, tried_.empty() ? nullptr : &tried_);
  if (!pool) {
    send_local_reply(grpc::status_for_error(why.code), "h2mesh: " + why.message);
    return;
  }
  // The entry stays while a call may still count into it (EndpointStats::users).
  if (endpoint_stats_) endpoint_stats_->users--;
  endpoint_stats_ = &pool->stats();
  endpoint_stats_->users++;
  attempt_start_ = ctx_.loop.now();
  // Each attempt is a span of its own (kind CLIENT), the backend's parent. The sampler is the
  // current one: a call that started before a reload keeps its trace, not the old tracer.
  if (traced() && ctx_.trace_sampler) attempt_span_id_ = ctx_.trace_sampler->new_span_id();
  attempt_status_ = -1;
  attempt_error_.clear();
  attempt_sent_ = req_base_;  // a retry resends the body from its start
  upstream_ = std::make_unique<UpstreamRequest>(*this, *pool);
  pool->attach(upstream_.get());  // may fail the attempt before returning
}

bool DownstreamStream::maybe_retry(const Error& why, int grpc_status) {
  if (finished() || resp_started_ || !route_) return false;
  const config::RetryPolicy& policy = route_->retry;
  if (attempts_ >= policy.max_attempts || !replayable_ || req_base_ != 0) return false;
  uint64_t ClusterStats::*reason;
  if (grpc_status >= 0) {
    // A status is only retried when the route asks for it: the backend may have done the work.
    if (std::find(policy.retry_on.begin(), policy.retry_on.end(), grpc_status) ==
        policy.retry_on.end())
      return false;
    reason = &ClusterStats::retries_status;
  } else if (why.code == ErrorCode::ConnectFailed || why.code == ErrorCode::ConnectTimeout) {
    reason = &ClusterStats::retries_connect_failure;  // never reached the backend
  } else if (why.code == ErrorCode::UpstreamGoaway) {
    reason = &ClusterStats::retries_refused_stream;  // the backend refused it unprocessed
  } else {
    return false;
  }
  Duration backoff = retry_backoff(attempts_, policy, ctx_.random);
  if (deadline_ && ctx_.loop.now() + backoff >= *deadline_) return false;
  if (!rules_->budget(route_).try_retry(ctx_.loop.now(), policy.budget_ratio,
                                        policy.budget_min_per_second)) {
    if (cluster_stats_) cluster_stats_->retry_budget_exhausted++;
    return false;
  }
  if (cluster_stats_) (cluster_stats_->*reason)++;
  if (upstream_) tried_.add(upstream_->pool().host().key);
  LOG_DEBUG("stream %d: attempt %u failed (%s); retrying in %lldus", id_, attempts_,
            grpc_status >= 0 ? grpc::status_name(grpc_status) : why.message.c_str(),
            static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(backoff).count()));
  release_upstream();
  retry_timer_.arm(backoff);
  return true;
}

void DownstreamStream::on_request_data(const uint8_t* data, size_t len) {
  if (finished()) {
    // The call already has its answer: drop the rest of the request.
    conn_.session().consume(id_, len);
    conn_.schedule_flush();
    return;
  }
  req_body_.append(data, len);
  req_total_ += len;
  trim_replay_buffer();
  if (upstream_) upstream_->request_data_available();
}

void DownstreamStream::on_request_end() {
  req_end_ = true;
  if (upstream_) upstream_->request_data_available();
}

void DownstreamStream::on_closed(uint32_t error_code) {
  if (closed_) return;
  closed_ = true;
  if (error_code == kCancel && final_status_ < 0) final_status_ = 1;  // CANCELLED
  if (upstream_ && attempt_status_ < 0 && attempt_error_.empty())
    attempt_error_ = "the client closed the stream";
  deadline_timer_.cancel();
  retry_timer_.cancel();
  release_upstream();  // the client went away: reset the backend's stream too
  discard_request_body();
  // The call ends here, while the rules it was routed under are certainly alive: the
  // connection may drop them as soon as this stream leaves it (drop_unused_rules), before our
  // deferred deletion.
  if (headers_done_) {
    const CallEvent call = describe();
    for (CallObserver* o : ctx_.call_observers) o->on_call_end(call);
  }
}

std::optional<Duration> DownstreamStream::remaining_time() const {
  if (!deadline_) return std::nullopt;
  return *deadline_ - ctx_.loop.now();
}

http2::BodyChunk DownstreamStream::read_request_body(size_t max_length) {
  uint64_t available = req_total_ - attempt_sent_;
  size_t n = static_cast<size_t>(std::min<uint64_t>(max_length, available));
  bool eof = req_end_ && n == available;
  if (n == 0 && !eof) return http2::BodyChunk{0, false, true, false};
  return http2::BodyChunk{n, eof, false, false};
}

void DownstreamStream::write_request_body(size_t length, Buffer& out) {
  out.append(req_body_.data() + (attempt_sent_ - req_base_), length);
  attempt_sent_ += length;
  if (attempt_sent_ > req_consumed_) {
    // New bytes reached the backend's connection: now the client may send more.
    conn_.session().consume(id_, attempt_sent_ - req_consumed_);
    req_consumed_ = attempt_sent_;
    conn_.schedule_flush();
  }
  trim_replay_buffer();
}

void DownstreamStream::trim_replay_buffer() {
  if (replayable_ && route_ && req_total_ > route_->retry.replay_buffer_bytes) replayable_ = false;
  if (replayable_) return;
  // No retry will need the bytes already sent.
  req_body_.drain(attempt_sent_ - req_base_);
  req_base_ = attempt_sent_;
}

void DownstreamStream::discard_request_body() {
  if (req_total_ > req_consumed_) {
    conn_.session().consume(id_, req_total_ - req_consumed_);
    conn_.schedule_flush();
  }
  req_consumed_ = req_base_ = attempt_sent_ = req_total_;
  req_body_.clear();
}

void DownstreamStream::on_upstream_header(std::string_view name, std::string_view value) {
  if (finished() || resp_has_trailers_) return;  // nothing more goes to the client
  // A backend's grpc-message with raw bytes (gRPC says percent-encoded) is encoded on the way:
  // clients may reject or mangle it otherwise (found by fuzz_upstream).
  if (name == "grpc-message") {
    std::string escaped;  // only here: the other fields of every response need no string
    if (grpc::escape_raw_message_bytes(value, &escaped)) {
      resp_headers_.add(name, escaped);
      return;
    }
  }
  resp_headers_.add(name, value);
}

void DownstreamStream::on_upstream_headers_end(http2::HeadersKind kind, bool end_stream) {
  if (finished()) {
    if (!resp_has_trailers_) resp_headers_.clear();
    return;
  }
  // After a 1xx, nghttp2 files the final response headers under the same category as trailers.
  if (kind == http2::HeadersKind::Trailers && !resp_started_ && resp_headers_.find(":status"))
    kind = http2::HeadersKind::Response;
  if (kind == http2::HeadersKind::Trailers) {
    // Kept in resp_headers_ until the body before them has gone out.
    resp_has_trailers_ = true;
    resp_end_ = true;
    final_status_ = status_of(resp_headers_);
    attempt_status_ = final_status_;
    resume_response();
    return;
  }
  auto status = resp_headers_.find(":status");
  if (status && !status->empty() && (*status)[0] == '1' && !end_stream) {  // 1xx
    resp_headers_.clear();
    return;
  }
  if (end_stream) {
    // Trailers-only: nothing reached the client yet, so a retryable status may be retried.
    int grpc_status = status_of(resp_headers_);
    attempt_status_ = grpc_status;
    if (grpc_status > 0 && maybe_retry(Error{}, grpc_status)) {
      resp_headers_.clear();
      return;
    }
    final_status_ = grpc_status;
  }
  // The session copies the fields: the block is free for the trailers.
  auto rv = conn_.session().submit_response(id_, HeaderRefs(resp_headers_).span(), !end_stream);
  resp_headers_.clear();
  if (!rv) {
    LOG_WARN("stream %d: cannot relay response headers: %s", id_, rv.error().message.c_str());
    conn_.session().reset_stream(id_, static_cast<uint32_t>(http2::H2Error::InternalError));
  }
  resp_started_ = true;
  resp_end_ = end_stream;
  replayable_ = false;  // never retried once response headers reached the client
  trim_replay_buffer();
  conn_.schedule_flush();
}

void DownstreamStream::on_upstream_data(const uint8_t* data, size_t len) {
  if (closed_ || resp_end_) {
    upstream_->consume_response(len);
    return;
  }
  resp_body_.append(data, len);
  resume_response();
}

void DownstreamStream::on_upstream_end() {
  if (closed_) return;
  resp_end_ = true;
  resume_response();
}

void DownstreamStream::on_upstream_headers_too_large(const std::string& message) {
  if (cluster_stats_) cluster_stats_->response_header_limit++;
  attempt_error_ = message;
  LOG_INFO("stream %d: %s", id_, message.c_str());
  resp_headers_.clear();  // the fields that came before the limit
  resp_has_trailers_ = false;
  // The backend did the work: not retried. The upstream stream is reset (CANCEL).
  send_local_reply(grpc::StatusCode::Internal, message);
}

void DownstreamStream::on_upstream_done() {
  release_upstream();
  if (finished()) discard_request_body();
}

void DownstreamStream::on_upstream_failed(const Error& why, uint32_t reset_code) {
  if (attempt_error_.empty()) attempt_error_ = why.message;
  if (maybe_retry(why, -1)) return;
  release_upstream();
  if (closed_) return;
  LOG_DEBUG("stream %d: upstream failed: %s", id_, why.message.c_str());
  if (resp_started_ && reset_code == kCancel) {
    // The backend cancelled a call it had started answering: pass the cancellation on.
    discard_request_body();
    conn_.session().reset_stream(id_, kCancel);
    conn_.schedule_flush();
    return;
  }
  send_local_reply(grpc::status_for_error(why.code), "h2mesh: " + why.message);
}

void DownstreamStream::send_local_reply(grpc::StatusCode code, const std::string& message,
                                        const char* http_status) {
  if (upstream_ && attempt_status_ < 0 && attempt_error_.empty()) attempt_error_ = message;
  release_upstream();
  retry_timer_.cancel();
  discard_request_body();
  if (resp_end_ && resp_started_) return;  // the answer is already complete
  int status = static_cast<int>(code);
  if (resp_started_) {
    end_response_with_trailers(status, message);
    return;
  }
  final_status_ = status;
  std::string status_text = std::to_string(status);
  std::string encoded = grpc::encode_message(message);
  const http2::HeaderRef headers[] = {{":status", http_status},
                                      {"content-type", "application/grpc"},
                                      {"grpc-status", status_text},
                                      {"grpc-message", encoded}};
  auto rv = conn_.session().submit_response(id_, headers, /*has_body=*/false);
  if (!rv) conn_.session().reset_stream(id_, static_cast<uint32_t>(http2::H2Error::InternalError));
  resp_started_ = true;
  resp_end_ = true;
  conn_.schedule_flush();
}

void DownstreamStream::end_response_with_trailers(int status, const std::string& message) {
  // Response headers already went out: what is buffered is delivered, then these trailers.
  final_status_ = status;
  resp_headers_.clear();
  resp_headers_.add("grpc-status", std::to_string(status));
  resp_headers_.add("grpc-message", grpc::encode_message(message));
  resp_has_trailers_ = true;
  resp_end_ = true;
  resume_response();
}

void DownstreamStream::release_upstream() {
  if (!upstream_) return;
  end_attempt();
  upstream_->cancel();
  ctx_.loop.defer_delete(std::move(upstream_));
}

void DownstreamStream::resume_response() {
  if (!resp_started_) return;
  conn_.session().resume_body(id_);
  conn_.schedule_flush();
}

http2::BodyChunk DownstreamStream::read_response_body(size_t max_length) {
  size_t n = std::min(max_length, resp_body_.size());
  bool eof = resp_end_ && n == resp_body_.size();
  if (n == 0 && !eof) return http2::BodyChunk{0, false, true, false};
  http2::BodyChunk chunk{n, eof, false, false};
  if (eof && resp_has_trailers_) {
    if (conn_.session().submit_trailers(id_, HeaderRefs(resp_headers_).span()))
      chunk.trailers_follow = true;
  }
  return chunk;
}

void DownstreamStream::write_response_body(size_t length, Buffer& out) {
  out.append(resp_body_.data(), length);
  resp_body_.drain(length);
  resp_total_ += length;
  // Passed on to the client: the backend may send more.
  if (upstream_) upstream_->consume_response(length);
}

void DownstreamStream::on_deadline() {
  if (finished()) return;
  if (cluster_stats_) cluster_stats_->deadline_exceeded++;
  send_local_reply(grpc::StatusCode::DeadlineExceeded,
                   "h2mesh: deadline exceeded before the call completed");
}

// ---------------------------------------------------------------------------------------------
// DownstreamConnection

void DownstreamConnection::count_inbound_call() {
  static const std::string kPlaintext = "plaintext", kNoName = "unnamed";
  const net::PeerIdentity* peer = transport_->peer_identity();
  const std::string& who = !peer                    ? kPlaintext
                           : !peer->uris.empty()    ? peer->uris.front()
                           : !peer->dns.empty()     ? peer->dns.front()
                                                    : kNoName;
  ctx_.stats.mesh.count_inbound_call(who);
}

DownstreamConnection::DownstreamConnection(WorkerContext& ctx,
                                           std::unique_ptr<net::Transport> transport,
                                           ListenerContextPtr listener,
                                           const http2::SessionOptions& opts)
    : http2::Connection(ctx.loop, std::move(transport), http2::Role::Server, opts),
      ctx_(ctx),
      listener_ctx_(std::move(listener)),
      listener_(listener_ctx_->listener),
      listener_stats_(ctx.stats.listeners[listener_.name]),
      rules_(listener_ctx_),
      header_timer_(ctx.loop, [this] { check_header_timeouts(); }),
      idle_timer_(ctx.loop,
                  [this] {
                    ctx_.stats.downstream_idle_closed++;
                    start_drain();
                  }),
      age_timer_(ctx.loop,
                 [this] {
                   ctx_.stats.downstream_max_age_goaways++;
                   start_drain(
                       std::chrono::duration_cast<Duration>(listener_.max_connection_age_grace));
                 }),
      drain_timer_(ctx.loop,
                   [this] {
                     session_.submit_goaway(static_cast<uint32_t>(http2::H2Error::NoError));
                     goaway_sent_ = true;
                     schedule_flush();
                     maybe_finish_drain();
                   }),
      grace_timer_(ctx.loop, [this] {
        LOG_INFO("downstream: drain grace period over; closing with %zu call(s) running",
                 streams_.size());
        close(make_error(ErrorCode::Draining, "drain grace period over"));
      }) {
  ctx_.stats.downstream_connections_total++;
  ctx_.stats.downstream_connections_active++;
  set_keepalive(std::chrono::duration_cast<Duration>(listener_.keepalive.interval),
                std::chrono::duration_cast<Duration>(listener_.keepalive.timeout),
                /*only_with_calls=*/false);
  // For the preface and SETTINGS; over TLS from the end of the handshake, which has a deadline
  // of its own (so a slow handshake is counted as a TLS timeout).
  if (!transport_->connecting()) header_timer_.arm(listener_.header_timeout);
  if (listener_.max_connection_age.count() > 0) {
    // ±10% jitter so that clients connected together do not all reconnect together.
    double factor = 0.9 + 0.2 * ctx_.random.unit();
    age_timer_.arm(Duration(static_cast<int64_t>(
        static_cast<double>(std::chrono::duration_cast<Duration>(listener_.max_connection_age).count()) *
        factor)));
  }
  update_idle_timer();
}

DownstreamConnection::~DownstreamConnection() {
  // Normally empty (on_closed hands the streams to the loop); not when a worker is torn down.
  streams_.for_each([&](DownstreamStream* stream) {
    streams_.remove(stream);
    delete stream;
  });
  ctx_.stats.downstream_connections_active--;
}

void DownstreamConnection::on_connected() {
  if (!settings_received_) header_timer_.arm(listener_.header_timeout);
}

bool DownstreamConnection::identity_allowed(const std::vector<std::string>& allowed) const {
  const net::PeerIdentity* peer = transport_->peer_identity();
  if (!peer || !peer->verified) return false;
  // URI SANs (SPIFFE IDs) first, then DNS SANs; exact matches only.
  for (const auto* names : {&peer->uris, &peer->dns})
    for (const std::string& name : *names)
      if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) return true;
  return false;
}

void DownstreamConnection::on_remote_settings() {
  if (settings_received_) return;
  settings_received_ = true;
  header_timer_.cancel();
  check_header_timeouts();
}

void DownstreamConnection::on_stream_open(int32_t stream_id) {
  auto* stream = new DownstreamStream(*this, stream_id);
  session_.set_stream_user(stream_id, stream);
  streams_.push_back(stream);
  open_header_block_ = stream_id;
  open_header_block_since_ = loop_.now();
  if (settings_received_ && !header_timer_.armed()) header_timer_.arm(listener_.header_timeout);
  update_idle_timer();
}

void DownstreamConnection::check_header_timeouts() {
  const Duration limit = std::chrono::duration_cast<Duration>(listener_.header_timeout);
  if (!settings_received_) {
    ctx_.stats.downstream_header_timeouts++;
    LOG_INFO("downstream: no HTTP/2 preface within %lldms; closing",
             static_cast<long long>(listener_.header_timeout.count()));
    close(make_error(ErrorCode::DeadlineExceeded, "preface timeout"));
    return;
  }
  // A request header block still open after header_timeout. Nothing else may be sent on the
  // connection until the block ends (RFC 9113 6.10), so the connection is closed, with a GOAWAY
  // saying why. The timer runs once per header_timeout at most, not per stream.
  if (open_header_block_ == 0) return;
  if (loop_.now() - open_header_block_since_ >= limit) {
    ctx_.stats.downstream_header_timeouts++;
    LOG_INFO("downstream: request headers of stream %d incomplete after %lldms; closing",
             open_header_block_, static_cast<long long>(listener_.header_timeout.count()));
    open_header_block_ = 0;
    protocol_error_counted_ = true;  // counted as a header timeout, not a protocol error
    close_with_goaway(http2::H2Error::EnhanceYourCalm);
  } else {
    header_timer_.arm_at(open_header_block_since_ + limit);
  }
}

void DownstreamConnection::update_idle_timer() {
  if (listener_.idle_timeout.count() == 0 || draining_) return;
  if (streams_.empty()) {
    if (!idle_timer_.armed()) idle_timer_.arm(listener_.idle_timeout);
  } else {
    idle_timer_.cancel();
  }
}

void DownstreamConnection::on_header(int32_t, void* user, std::string_view name,
                                     std::string_view value) {
  if (user) static_cast<DownstreamStream*>(user)->on_request_header(name, value);
}

void DownstreamConnection::on_headers_end(int32_t id, void* user, http2::HeadersKind kind,
                                          bool end_stream) {
  if (id == open_header_block_) open_header_block_ = 0;
  if (!user) return;
  static_cast<DownstreamStream*>(user)->on_request_headers_end(
      end_stream, kind == http2::HeadersKind::Trailers);
}

void DownstreamConnection::on_headers_too_large(int32_t id, void* user, http2::HeadersKind kind,
                                                const http2::HeaderOverflow& overflow) {
  if (id == open_header_block_) open_header_block_ = 0;
  if (!user) return;
  static_cast<DownstreamStream*>(user)->on_request_headers_too_large(
      kind == http2::HeadersKind::Trailers, overflow);
}

void DownstreamConnection::for_each_stream(const std::function<void(int32_t)>& fn) {
  streams_.for_each([&](DownstreamStream* stream) { fn(stream->id()); });
}

void DownstreamConnection::on_data(int32_t id, void* user, const uint8_t* data, size_t len) {
  if (user) {
    static_cast<DownstreamStream*>(user)->on_request_data(data, len);
  } else {
    session_.consume(id, len);
  }
}

void DownstreamConnection::on_data_end(int32_t, void* user) {
  if (user) static_cast<DownstreamStream*>(user)->on_request_end();
}

void DownstreamConnection::on_stream_close(int32_t id, void* user, uint32_t error_code) {
  if (id == open_header_block_) open_header_block_ = 0;
  if (!user) return;
  release_stream(static_cast<DownstreamStream*>(user), error_code);
  update_idle_timer();
  maybe_finish_drain();
}

http2::BodyChunk DownstreamConnection::read_body(int32_t, void* user, size_t max_length) {
  if (!user) return http2::BodyChunk{0, true, false, false};
  return static_cast<DownstreamStream*>(user)->read_response_body(max_length);
}

void DownstreamConnection::write_body(int32_t, void* user, size_t length, Buffer& out) {
  if (user) static_cast<DownstreamStream*>(user)->write_response_body(length, out);
}

void DownstreamConnection::on_closed(const Error& why) {
  LOG_DEBUG("downstream connection closed: %s", why.message.c_str());
  drain_timer_.cancel();
  grace_timer_.cancel();
  header_timer_.cancel();
  idle_timer_.cancel();
  age_timer_.cancel();
  streams_.for_each([&](DownstreamStream* stream) {
    session_.set_stream_user(stream->id(), nullptr);  // no later callback may reach it
    release_stream(stream, kCancel);
  });
  if (on_gone) on_gone(this);
}

void DownstreamConnection::release_stream(DownstreamStream* stream, uint32_t error_code) {
  stream->on_closed(error_code);
  streams_.remove(stream);
  loop_.defer_delete(std::unique_ptr<DownstreamStream>(stream));
  if (!retired_rules_.empty()) drop_unused_rules();
}

void DownstreamConnection::set_rules(ListenerContextPtr rules) {
  if (rules == rules_) return;
  // The connection's own context lives as long as the connection anyway.
  if (rules_ != listener_ctx_) retired_rules_.push_back(std::move(rules_));
  rules_ = std::move(rules);
  drop_unused_rules();
}

void DownstreamConnection::drop_unused_rules() {
  std::erase_if(retired_rules_, [&](const ListenerContextPtr& r) {
    bool used = false;
    streams_.for_each([&](DownstreamStream* s) { used = used || s->rules() == r.get(); });
    return !used;
  });
}

void DownstreamConnection::on_goaway_sent(uint32_t error_code) {
  // nghttp2 answers most protocol violations with a GOAWAY by itself: count them here.
  if (error_code == 0 || protocol_error_counted_) return;
  protocol_error_counted_ = true;
  if (error_code == static_cast<uint32_t>(http2::H2Error::EnhanceYourCalm)) {
    ctx_.stats.downstream_flood_goaways++;
    LOG_INFO("downstream: frame budget exceeded; sent GOAWAY ENHANCE_YOUR_CALM");
    return;
  }
  ctx_.stats.downstream_protocol_errors++;
  LOG_INFO("downstream: protocol error; sent GOAWAY with error code %u", error_code);
}

void DownstreamConnection::on_receive_error(const Error& why) {
  if (why.code == ErrorCode::InvalidArgument) {
    ctx_.stats.downstream_protocol_errors++;
    protocol_error_counted_ = true;
    // Not an HTTP/2 client (typically HTTP/1.1): say so in a language it understands.
    static const std::string kBody =
        "h2mesh: this port speaks HTTP/2 (gRPC) with prior knowledge only.\n";
    static const std::string kReply =
        "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\n"
        "Connection: close\r\nContent-Length: " +
        std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
    LOG_INFO("downstream: client did not send the HTTP/2 preface; answered 505 and closed");
    write_raw_and_close(kReply.data(), kReply.size());
    return;
  }
  LOG_DEBUG("downstream: %s", why.message.c_str());
  http2::Connection::on_receive_error(why);  // the GOAWAY is counted in on_goaway_sent
}

void DownstreamConnection::start_drain(std::optional<Duration> grace) {
  if (draining_ || closed()) return;
  draining_ = true;
  idle_timer_.cancel();
  age_timer_.cancel();
  session_.submit_shutdown_notice();
  schedule_flush();
  // One round trip later, the final GOAWAY names the last stream we accept.
  drain_timer_.arm(std::chrono::milliseconds(500));
  if (grace) grace_timer_.arm(*grace);
}

void DownstreamConnection::maybe_finish_drain() {
  if (goaway_sent_ && streams_.empty() && !closed()) {
    session_.terminate(static_cast<uint32_t>(http2::H2Error::NoError));
    schedule_flush();
  }
}

}  // namespace h2mesh::proxy
