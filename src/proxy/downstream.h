#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "common/intrusive_list.h"
#include "common/pooled.h"
#include "grpc/status.h"
#include "http2/connection.h"
#include "net/event_loop.h"
#include "proxy/call_event.h"
#include "proxy/cluster_manager.h"
#include "proxy/headers.h"
#include "proxy/router.h"
#include "proxy/stats.h"
#include "proxy/tried_endpoints.h"
#include "proxy/worker_context.h"

namespace h2mesh::proxy {

class DownstreamConnection;
class UpstreamRequest;

// One gRPC call from a client: request headers, body and trailers in, response back. Owns the
// UpstreamRequest of its current attempt, and keeps the request body for replay while a retry
// is still possible. Lives from the client's HEADERS to nghttp2's stream close callback, then is
// deleted at the end of the loop iteration. Its memory is recycled by the worker (Pooled).
class DownstreamStream final : public net::Deletable, public Pooled<DownstreamStream> {
 public:
  DownstreamStream(DownstreamConnection& conn, int32_t id);
  ~DownstreamStream() override;

  // --- from the downstream session (DownstreamConnection dispatches) ---
  void on_request_header(std::string_view name, std::string_view value);
  void on_request_headers_end(bool end_stream, bool trailers);
  // The request's headers (or trailers) went over the listener's header limits.
  void on_request_headers_too_large(bool trailers, const http2::HeaderOverflow& overflow);
  void on_request_data(const uint8_t* data, size_t len);
  void on_request_end();
  // Client or connection ended the stream. After this the stream only waits for deletion.
  void on_closed(uint32_t error_code);
  http2::BodyChunk read_response_body(size_t max_length);
  void write_response_body(size_t length, Buffer& out);

  // --- from the UpstreamRequest of the current attempt ---
  const HeaderBlock& request_headers() const { return req_headers_; }
  bool request_has_body() const { return !req_end_ || req_total_ > 0; }
  // Remaining time before the call's deadline, if it has one.
  std::optional<Duration> remaining_time() const;
  uint32_t previous_attempts() const { return attempts_ - 1; }
  http2::BodyChunk read_request_body(size_t max_length);
  void write_request_body(size_t length, Buffer& out);
  bool has_request_trailers() const { return req_has_trailers_; }
  const HeaderBlock& request_trailers() const { return *req_trailers_; }
  void on_upstream_header(std::string_view name, std::string_view value);
  void on_upstream_headers_end(http2::HeadersKind kind, bool end_stream);
  void on_upstream_data(const uint8_t* data, size_t len);
  void on_upstream_end();
  // The response's headers or trailers went over the cluster's header limits.
  void on_upstream_headers_too_large(const std::string& message);
  // The attempt ended before a complete response: `why` says how.
  void on_upstream_failed(const Error& why, uint32_t reset_code);
  // The upstream stream closed after a complete response.
  void on_upstream_done();

  int32_t id() const { return id_; }
  // The call's trace (proxy/call_event.h), and the span id of the current attempt: all zero
  // unless tracing was on when the call started.
  const TraceIds& trace() const { return trace_; }
  const std::array<uint8_t, 8>& attempt_span_id() const { return attempt_span_id_; }
  // Whether h2mesh records spans for this call (sampled or not): its upstream requests then
  // carry h2mesh's own traceparent.
  bool traced() const { return trace_.valid && trace_.span_id != std::array<uint8_t, 8>{}; }
  // Whether the caller's traceparent was continued (else the trace is new).
  bool trace_continued() const { return trace_.parent_span_id != std::array<uint8_t, 8>{}; }
  // The rules the call was routed under; null before routing.
  const ListenerContext* rules() const { return rules_; }
  ListNode conn_node;  // streams of the connection

 private:
  // Bodies up to this size (most unary messages) stay inside the stream object.
  static constexpr size_t kInlineBody = 512;

  void route_and_start();
  // Reads the caller's traceparent: with tracing on, the call's trace and span (continued or
  // new, sampled or not); with it off, only the caller's context, for the observers.
  void start_trace();
  void start_attempt();
  // Tries the call again if the route's policy, the budget and the deadline allow; true if a
  // retry is scheduled.
  bool maybe_retry(const Error& why, int grpc_status);
  // Answers the call itself, trailers-only (`http_status` is "200" but for malformed requests).
  void send_local_reply(grpc::StatusCode code, const std::string& message,
                        const char* http_status = "200");
  void reject_malformed_timeout(std::string_view value, const char* why);
  void end_response_with_trailers(int status, const std::string& message);
  void release_upstream();
  void discard_request_body();
  void trim_replay_buffer();
  void resume_response();
  void on_deadline();
  // Reports the current attempt's end to the observers (before its UpstreamRequest goes).
  void end_attempt();
  // The call as the observers see it (proxy/call_event.h); text fields point into our headers.
  CallEvent describe() const;
  bool finished() const { return closed_ || (resp_started_ && resp_end_); }

  DownstreamConnection& conn_;
  WorkerContext& ctx_;
  const int32_t id_;
  HeaderBlock req_headers_;
  std::unique_ptr<HeaderBlock> req_trailers_;  // rare in gRPC: allocated when they come
  bool req_has_trailers_ = false;
  bool headers_done_ = false;

  // Request body. req_body_ holds bytes [req_base_, req_total_) (absolute offsets in the body);
  // the current attempt has sent up to attempt_sent_; the client's window was returned up to
  // req_consumed_. While a retry is possible nothing is dropped (up to the replay limit).
  SmallBuffer<kInlineBody> req_body_;
  uint64_t req_base_ = 0;
  uint64_t req_total_ = 0;
  uint64_t attempt_sent_ = 0;
  uint64_t req_consumed_ = 0;
  bool req_end_ = false;
  bool replayable_ = true;  // false once a retry could no longer resend the whole body

  const ListenerContext* rules_ = nullptr;  // kept alive by the connection while we run
  const config::Route* route_ = nullptr;     // one of rules_'s routes
  ClusterManager::ClusterState* cluster_ = nullptr;  // the route's cluster on this worker
  uint32_t attempts_ = 0;
  TriedEndpoints tried_;  // of the failed attempts, avoided by a retry
  net::Timer retry_timer_;
  std::optional<TimePoint> deadline_;
  net::Timer deadline_timer_;

  // Response headers being received from upstream (relayed, then cleared), then the trailers,
  // kept until the body before them has been passed on.
  HeaderBlock resp_headers_;
  SmallBuffer<kInlineBody> resp_body_;
  bool resp_started_ = false;  // response HEADERS submitted to the client
  bool resp_end_ = false;      // nothing more will be added to resp_body_
  bool resp_has_trailers_ = false;  // resp_headers_ holds the trailers to send
  bool closed_ = false;
  int final_status_ = -1;

  // What the call and its attempts report when they end (proxy/call_event.h).
  TimePoint start_{};          // request headers complete
  TimePoint attempt_start_{};  // the current attempt's endpoint was picked
  Duration upstream_duration_{};  // of the last attempt that ended
  uint64_t resp_total_ = 0;    // response body bytes passed to the client
  int attempt_status_ = -1;    // grpc-status of the current attempt's response, if any
  std::string attempt_error_;  // why the current attempt failed without a status
  std::string upstream_address_;  // the last attempt's endpoint
  std::string_view path_, authority_;  // into req_headers_, set when routed
  TraceIds trace_;
  std::array<uint8_t, 8> attempt_span_id_{};

  std::unique_ptr<UpstreamRequest> upstream_;
  ClusterStats* cluster_stats_ = nullptr;
  EndpointStats* endpoint_stats_ = nullptr;
};

// A client's HTTP/2 connection (server role). Owned by the worker.
class DownstreamConnection final : public http2::Connection {
 public:
  DownstreamConnection(WorkerContext& ctx, std::unique_ptr<net::Transport> transport,
                       ListenerContextPtr listener, const http2::SessionOptions& opts);
  ~DownstreamConnection() override;

  WorkerContext& ctx() { return ctx_; }
  // The rules calls starting now follow: the listener's latest context.
  const ListenerContext& rules() const { return *rules_; }
  const ListenerContextPtr& rules_context() const { return rules_; }
  const Router& router() const { return rules_->router; }
  // Worker thread. A reload gave the listener new rules: calls from now on follow them, calls in
  // flight keep theirs (their context stays alive until the last of them is released).
  void set_rules(ListenerContextPtr rules);
  const config::Listener& listener() const { return listener_; }
  // The listener's call stats in the worker's stats (a map entry, stable while the worker runs).
  ListenerStats& listener_stats() const { return listener_stats_; }
  // Graceful drain: GOAWAY notice now, final GOAWAY shortly after, close when no call is left.
  // With a grace period, calls still running after it are cut.
  void start_drain(std::optional<Duration> grace = std::nullopt);
  size_t stream_count() const { return streams_.size(); }
  // Whether the client's verified certificate names one of `allowed` (URI or DNS SAN).
  bool identity_allowed(const std::vector<std::string>& allowed) const;

  // Mesh mode: the connection arrived at the pod through the inbound port (set by the worker
  // before the first call); its calls are counted by the caller's identity.
  void set_inbound(bool inbound) { inbound_ = inbound; }
  bool inbound() const { return inbound_; }
  // Counts one call of an inbound connection under the peer's identity (its first URI SAN, else
  // its first DNS SAN; "plaintext" without TLS).
  void count_inbound_call();

  // Set by the worker; called once when the connection is gone so the worker can delete it.
  std::function<void(DownstreamConnection*)> on_gone;

 private:
  // http2::SessionVisitor
  void on_stream_open(int32_t stream_id) override;
  void on_header(int32_t id, void* user, std::string_view name, std::string_view value) override;
  void on_headers_end(int32_t id, void* user, http2::HeadersKind kind, bool end_stream) override;
  void on_headers_too_large(int32_t id, void* user, http2::HeadersKind kind,
                            const http2::HeaderOverflow& overflow) override;
  void on_data(int32_t id, void* user, const uint8_t* data, size_t len) override;
  void on_data_end(int32_t id, void* user) override;
  void on_stream_close(int32_t id, void* user, uint32_t error_code) override;
  void for_each_stream(const std::function<void(int32_t)>& fn) override;
  void on_goaway(int32_t, uint32_t) override {}
  void on_remote_settings() override;
  void on_goaway_sent(uint32_t error_code) override;
  http2::BodyChunk read_body(int32_t id, void* user, size_t max_length) override;
  void write_body(int32_t id, void* user, size_t length, Buffer& out) override;
  // http2::Connection
  void on_connected() override;  // a TLS handshake finished
  void on_closed(const Error& why) override;
  void on_receive_error(const Error& why) override;

  // The stream ended (`error_code` as for on_closed): unlinked now, deleted after this iteration.
  void release_stream(DownstreamStream* stream, uint32_t error_code);
  // Lets go of replaced rules that no open stream follows any more.
  void drop_unused_rules();
  void maybe_finish_drain();
  void update_idle_timer();
  void check_header_timeouts();

  WorkerContext& ctx_;
  // The config this connection was opened under: its connection-level settings (what SETTINGS
  // advertised, timeouts) stay for the connection's life.
  ListenerContextPtr listener_ctx_;
  const config::Listener& listener_;
  ListenerStats& listener_stats_;
  ListenerContextPtr rules_;  // routes for new calls; replaced by reloads
  std::vector<ListenerContextPtr> retired_rules_;  // replaced, still followed by open streams
  // Owned: deleted through the loop's defer_delete when they close.
  IntrusiveList<DownstreamStream, &DownstreamStream::conn_node> streams_;
  // The stream whose request header block is still open (HTTP/2 allows one at a time per
  // connection: CONTINUATION frames must follow their HEADERS), and since when.
  int32_t open_header_block_ = 0;
  TimePoint open_header_block_since_;
  net::Timer header_timer_;  // preface, then request headers
  net::Timer idle_timer_;
  net::Timer age_timer_;
  net::Timer drain_timer_;
  net::Timer grace_timer_;
  bool settings_received_ = false;
  bool protocol_error_counted_ = false;
  bool draining_ = false;
  bool goaway_sent_ = false;
  bool inbound_ = false;
};

}  // namespace h2mesh::proxy
