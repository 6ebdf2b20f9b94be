#include "proxy/upstream.h"

#include <algorithm>
#include <vector>

#include "common/log.h"
#include "grpc/status.h"
#include "observe/trace_context.h"
#include "proxy/conn_pool.h"
#include "proxy/downstream.h"

namespace h2mesh::proxy {

// ---------------------------------------------------------------------------------------------
// UpstreamRequest

UpstreamRequest::UpstreamRequest(DownstreamStream& downstream, ConnPool& pool)
    : downstream_(downstream), pool_(pool) {
  pool_.call_started();
}

UpstreamRequest::~UpstreamRequest() {
  cancel();
  pool_.call_ended();
}

void UpstreamRequest::cancel() {
  if (pool_node.linked()) pool_.detach(this);
  if (conn_) {
    // The downstream gave up (cancel, deadline, client gone): stop the backend's work too.
    // A finished response only needs the stream closed; anything else stops the backend's work.
    auto code = response_complete_ ? http2::H2Error::NoError : http2::H2Error::Cancel;
    conn_->session().reset_stream(stream_id_, static_cast<uint32_t>(code));
    unlink_stream();
  }
}

void UpstreamRequest::unlink_stream() {
  http2::Session& s = conn_->session();
  s.set_stream_user(stream_id_, nullptr);
  // Bytes still buffered for the client no longer hold the backend back.
  s.consume(stream_id_, unconsumed_);
  unconsumed_ = 0;
  conn_->remove_request(this);
  conn_->schedule_flush();
  conn_ = nullptr;
}

void UpstreamRequest::start_on(UpstreamConnection& conn) {
  const HeaderBlock& in = downstream_.request_headers();
  // A traced call's request goes on with h2mesh's attempt span as the parent (W3C trace
  // context); the caller's tracestate goes with it unless the caller's traceparent was invalid
  // (its entries describe another trace). Untraced calls pass both through untouched, and
  // grpc-trace-bin is always left alone.
  const bool traced = downstream_.traced();
  const bool drop_tracestate = traced && !downstream_.trace_continued();
  HeaderRefs refs;
  for (size_t i = 0; i < in.size(); ++i) {
    std::string_view name = in.name(i);
    if (name == "grpc-timeout" || name == "grpc-previous-rpc-attempts") continue;
    if (traced && name == "traceparent") continue;
    if (drop_tracestate && name == "tracestate") continue;
    refs.push(name, in.value(i));
  }
  char traceparent[observe::kTraceparentLength];
  if (traced) {
    const TraceIds& t = downstream_.trace();
    observe::format_traceparent(t.trace_id, downstream_.attempt_span_id(), t.sampled, traceparent);
    refs.push("traceparent", std::string_view(traceparent, sizeof(traceparent)));
  }
  std::string attempts;
  if (uint32_t previous = downstream_.previous_attempts(); previous > 0) {
    attempts = std::to_string(previous);
    refs.push("grpc-previous-rpc-attempts", attempts);
  }
  std::string timeout;
  if (auto remaining = downstream_.remaining_time()) {
    // The backend gets what is left of the caller's deadline, not the original budget.
    timeout = grpc::format_timeout(std::max(*remaining, Duration(1)));
    refs.push("grpc-timeout", timeout);
  }
  bool has_body = downstream_.request_has_body() || downstream_.has_request_trailers();
  auto id = conn.session().submit_request(refs.span(), has_body, this);
  if (!id) {
    // Never sent: safe to retry elsewhere. The connection takes no more calls.
    conn.drain();
    fail(make_error(ErrorCode::UpstreamGoaway, "cannot open a stream to " + pool_.host().key +
                                                   ": " + id.error().message));
    return;
  }
  stream_id_ = *id;
  conn_ = &conn;
  conn.add_request(this);
  conn.schedule_flush();
}

void UpstreamRequest::fail(const Error& why) { downstream_.on_upstream_failed(why, 0); }

void UpstreamRequest::request_data_available() {
  if (!conn_) return;
  conn_->session().resume_body(stream_id_);
  conn_->schedule_flush();
}

void UpstreamRequest::consume_response(size_t n) {
  if (!conn_) return;  // already returned when the stream closed
  n = std::min(n, unconsumed_);
  unconsumed_ -= n;
  conn_->session().consume(stream_id_, n);
  conn_->schedule_flush();
}

void UpstreamRequest::on_header(std::string_view name, std::string_view value) {
  if (name == "grpc-status") grpc_status_ = grpc::parse_status(value).value_or(2);
  downstream_.on_upstream_header(name, value);
}

void UpstreamRequest::on_headers_end(http2::HeadersKind kind, bool end_stream) {
  if (end_stream) response_done();
  downstream_.on_upstream_headers_end(kind, end_stream);
}

void UpstreamRequest::on_headers_too_large(http2::HeadersKind kind,
                                           const http2::HeaderOverflow& overflow) {
  pool_.note_outcome(true);  // a backend that breaks the limits is not one to keep sending to
  std::string message = std::string("h2mesh: response ") +
                        (kind == http2::HeadersKind::Trailers ? "trailers" : "headers") + " from " +
                        pool_.host().key + " with " + overflow.describe();
  downstream_.on_upstream_headers_too_large(message);  // resets the upstream stream
}

void UpstreamRequest::response_done() {
  response_complete_ = true;
  pool_.note_outcome(grpc_status_ >= 0 && pool_.is_failure_status(grpc_status_));
}

void UpstreamRequest::on_data(const uint8_t* data, size_t len) {
  unconsumed_ += len;
  downstream_.on_upstream_data(data, len);
}

void UpstreamRequest::on_data_end() {
  response_done();
  downstream_.on_upstream_end();
}

void UpstreamRequest::on_stream_closed(uint32_t error_code) {
  unlink_stream();
  if (response_complete_) {
    downstream_.on_upstream_done();
  } else {
    // A refused stream (GOAWAY, stream limit) says nothing about the backend's health.
    if (error_code != static_cast<uint32_t>(http2::H2Error::RefusedStream)) pool_.note_outcome(true);
    if (error_code != 0) pool_.stats().upstream_resets++;
    std::string msg = "upstream " + pool_.host().key + " reset the stream (HTTP/2 error " +
                      std::to_string(error_code) + ")";
    ErrorCode code = error_code == static_cast<uint32_t>(http2::H2Error::RefusedStream)
                         ? ErrorCode::UpstreamGoaway
                         : ErrorCode::UpstreamReset;
    downstream_.on_upstream_failed(make_error(code, msg), error_code);
  }
}

void UpstreamRequest::on_connection_lost(const Error& why) {
  conn_->remove_request(this);
  conn_ = nullptr;
  unconsumed_ = 0;
  if (response_complete_) {
    downstream_.on_upstream_done();
  } else {
    pool_.note_outcome(true);
    downstream_.on_upstream_failed(
        make_error(ErrorCode::UpstreamReset,
                   "connection to upstream " + pool_.host().key + " lost: " + why.message),
        0);
  }
}

http2::BodyChunk UpstreamRequest::read_body(size_t max_length) {
  http2::BodyChunk chunk = downstream_.read_request_body(max_length);
  if (chunk.eof && downstream_.has_request_trailers() && conn_) {
    HeaderRefs refs(downstream_.request_trailers());
    if (conn_->session().submit_trailers(stream_id_, refs.span())) chunk.trailers_follow = true;
  }
  return chunk;
}

void UpstreamRequest::write_body(size_t length, Buffer& out) {
  downstream_.write_request_body(length, out);
}

// ---------------------------------------------------------------------------------------------
// UpstreamConnection

UpstreamConnection::UpstreamConnection(ConnPool& pool, std::unique_ptr<net::Transport> transport,
                                       const http2::SessionOptions& opts, Duration connect_timeout)
    : http2::Connection(pool.ctx().loop, std::move(transport), http2::Role::Client, opts),
      pool_(pool),
      idle_timer_(pool.ctx().loop, [this] { drain(); }),
      connect_timer_(pool.ctx().loop, [this, connect_timeout] {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(connect_timeout).count();
        close(make_error(ErrorCode::ConnectTimeout,
                         "no HTTP/2 SETTINGS within " + std::to_string(ms) + "ms"));
      }) {
  connect_timer_.arm(connect_timeout);
  const config::Keepalive& keepalive = pool.settings().keepalive;
  set_keepalive(std::chrono::duration_cast<Duration>(keepalive.interval),
                std::chrono::duration_cast<Duration>(keepalive.timeout), /*only_with_calls=*/true);
  pool_.stats().upstream_connections++;
  pool_.stats().upstream_connections_total++;
}

UpstreamConnection::~UpstreamConnection() = default;

namespace {
// Stream ids are 31 bits; a connection close to the end is replaced before it runs out.
constexpr uint32_t kLastUsableStreamId = 0x7fff0000;
}  // namespace

uint32_t UpstreamConnection::free_slots() const {
  if (!ready()) return 0;
  if (session_.next_stream_id() >= kLastUsableStreamId) return 0;
  uint32_t max = session_.remote_max_concurrent_streams();
  uint32_t active = active_streams();
  return max > active ? max - active : 0;
}

void UpstreamConnection::add_request(UpstreamRequest* req) {
  requests_.push_back(req);
  idle_timer_.cancel();
  if (session_.next_stream_id() >= kLastUsableStreamId) {
    LOG_INFO("upstream %s: connection used up its stream ids; replacing it",
             pool_.host().key.c_str());
    drain();
  }
}

void UpstreamConnection::remove_request(UpstreamRequest* req) {
  requests_.remove(req);
  arm_idle_timer();
}

void UpstreamConnection::arm_idle_timer() {
  auto idle = pool_.settings().idle_timeout;
  if (requests_.empty() && idle.count() > 0 && !draining_) idle_timer_.arm(idle);
}

void UpstreamConnection::drain() {
  draining_ = true;
  maybe_close_drained();
}

void UpstreamConnection::maybe_close_drained() {
  if (draining_ && requests_.empty() && !closed()) {
    session_.terminate(static_cast<uint32_t>(http2::H2Error::NoError));
    schedule_flush();
  }
}

void UpstreamConnection::on_header(int32_t, void* user, std::string_view name,
                                   std::string_view value) {
  if (user) static_cast<UpstreamRequest*>(user)->on_header(name, value);
}

void UpstreamConnection::on_headers_end(int32_t, void* user, http2::HeadersKind kind,
                                        bool end_stream) {
  if (user) static_cast<UpstreamRequest*>(user)->on_headers_end(kind, end_stream);
}

void UpstreamConnection::on_headers_too_large(int32_t id, void* user, http2::HeadersKind kind,
                                              const http2::HeaderOverflow& overflow) {
  if (user) {
    static_cast<UpstreamRequest*>(user)->on_headers_too_large(kind, overflow);
  } else {
    session_.reset_stream(id, static_cast<uint32_t>(http2::H2Error::Cancel));
    schedule_flush();
  }
}

void UpstreamConnection::for_each_stream(const std::function<void(int32_t)>& fn) {
  requests_.for_each([&](UpstreamRequest* r) { fn(r->stream_id()); });
}

void UpstreamConnection::on_data(int32_t id, void* user, const uint8_t* data, size_t len) {
  if (user) {
    static_cast<UpstreamRequest*>(user)->on_data(data, len);
  } else {
    session_.consume(id, len);  // nobody wants it any more
  }
}

void UpstreamConnection::on_data_end(int32_t, void* user) {
  if (user) static_cast<UpstreamRequest*>(user)->on_data_end();
}

void UpstreamConnection::on_stream_close(int32_t, void* user, uint32_t error_code) {
  if (user) static_cast<UpstreamRequest*>(user)->on_stream_closed(error_code);
  pool_.on_slot_free(this);
  maybe_close_drained();
}

void UpstreamConnection::on_goaway(int32_t last_stream_id, uint32_t error_code) {
  LOG_INFO("upstream %s sent GOAWAY (last stream %d, error %u): draining the connection",
           pool_.host().key.c_str(), last_stream_id, error_code);
  // Streams above last_stream_id are closed by the session with REFUSED_STREAM; the ones the
  // backend accepted run to completion.
  draining_ = true;
  pool_.on_slot_free(this);
  maybe_close_drained();
}

void UpstreamConnection::on_remote_settings() {
  if (!ready_) {
    ready_ = true;
    connect_timer_.cancel();
    arm_idle_timer();
    pool_.on_connection_ready(this);
  } else {
    pool_.on_slot_free(this);  // the stream limit may have grown
  }
}

http2::BodyChunk UpstreamConnection::read_body(int32_t, void* user, size_t max_length) {
  if (!user) return http2::BodyChunk{0, true, false, false};
  return static_cast<UpstreamRequest*>(user)->read_body(max_length);
}

void UpstreamConnection::write_body(int32_t, void* user, size_t length, Buffer& out) {
  if (user) static_cast<UpstreamRequest*>(user)->write_body(length, out);
}

void UpstreamConnection::on_connected() {}

void UpstreamConnection::on_closed(const Error& why) {
  connect_timer_.cancel();
  idle_timer_.cancel();
  pool_.stats().upstream_connections--;
  bool was_ready = ready_;
  requests_.for_each([&](UpstreamRequest* r) { r->on_connection_lost(why); });
  pool_.on_connection_closed(this, why, was_ready);
}

}  // namespace h2mesh::proxy
