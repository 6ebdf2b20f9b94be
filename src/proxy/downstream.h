#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <functional>
#include <optional>

#include "common/buffer.h"
#include "grpc/status.h"
#include "common/intrusive_list.h"
#include "net/event_loop.h"
#include "proxy/h2_connection.h"
#include "proxy/router.h"
#include "proxy/stats.h"
#include "proxy/worker_context.h"

namespace h2mesh::proxy {

class DownstreamConnection;
class UpstreamRequest;

struct Header {
  std::string name;
  std::string value;
};
using HeaderList = std::vector<Header>;

// One gRPC call from a client: request headers, body and trailers in, response back. Owns the
// UpstreamRequest of its current attempt. Lives from the client's HEADERS to nghttp2's stream
// close callback, then is deleted at the end of the loop iteration.
class DownstreamStream : public net::Deletable {
 public:
  DownstreamStream(DownstreamConnection& conn, int32_t id);
  ~DownstreamStream() override;

  // --- from the downstream session (DownstreamConnection dispatches) ---
  void on_request_header(std::string_view name, std::string_view value);
  void on_request_headers_end(bool end_stream, bool trailers);
  void on_request_data(const uint8_t* data, size_t len);
  void on_request_end();
  // Client or connection ended the stream. After this the stream only waits for deletion.
  void on_closed(uint32_t error_code);
  http2::BodyChunk read_response_body(size_t max_length);
  void write_response_body(size_t length, Buffer& out);

  // --- from the UpstreamRequest of the current attempt ---
  const HeaderList& request_headers() const { return req_headers_; }
  bool request_has_body() const { return !req_end_ || !req_body_.empty(); }
  // Remaining time before the call's deadline, if the client sent grpc-timeout.
  std::optional<Duration> remaining_time() const;
  http2::BodyChunk read_request_body(size_t max_length);
  void write_request_body(size_t length, Buffer& out);
  bool has_request_trailers() const { return req_has_trailers_; }
  const HeaderList& request_trailers() const { return req_trailers_; }
  void on_upstream_header(std::string_view name, std::string_view value);
  void on_upstream_headers_end(http2::HeadersKind kind, bool end_stream);
  void on_upstream_data(const uint8_t* data, size_t len);
  void on_upstream_end();
  // The attempt ended before a complete response: `why` says how.
  void on_upstream_failed(const Error& why, uint32_t reset_code);
  // The upstream stream closed after a complete response.
  void on_upstream_done();

  int32_t id() const { return id_; }
  ListNode conn_node;

 private:
  void route_and_start();
  void send_local_reply(grpc::StatusCode code, const std::string& message);
  void release_upstream();
  void discard_request_body();
  void end_response_with_trailers(int status, const std::string& message);
  void resume_response();
  void on_deadline();

  DownstreamConnection& conn_;
  WorkerContext& ctx_;
  const int32_t id_;
  HeaderList req_headers_;
  HeaderList req_trailers_;
  bool req_has_trailers_ = false;
  std::string_view path_, authority_;
  Buffer req_body_;
  bool req_end_ = false;
  bool headers_done_ = false;
  std::optional<TimePoint> deadline_;
  std::unique_ptr<net::Timer> deadline_timer_;

  HeaderList resp_scratch_;  // response headers or trailers being received from upstream
  Buffer resp_body_;
  bool resp_started_ = false;  // response HEADERS submitted to the client
  bool resp_end_ = false;      // nothing more will be added to resp_body_
  bool resp_has_trailers_ = false;
  HeaderList resp_trailers_;
  bool closed_ = false;
  int final_status_ = -1;

  std::unique_ptr<UpstreamRequest> upstream_;
  ClusterStats* cluster_stats_ = nullptr;
  EndpointStats* endpoint_stats_ = nullptr;
};

// A client's HTTP/2 connection (server role). Owned by the worker.
class DownstreamConnection final : public H2Connection {
 public:
  // `router` outlives the connection (the worker keeps the config alive).
  DownstreamConnection(WorkerContext& ctx, int fd, const Router& router,
                       const http2::SessionOptions& opts);
  ~DownstreamConnection() override;

  WorkerContext& ctx() { return ctx_; }
  const Router& router() const { return router_; }
  // Graceful drain: GOAWAY notice now, final GOAWAY shortly after, close when no call is left.
  void start_drain();
  size_t stream_count() const { return streams_.size(); }

  // Set by the worker; called once when the connection is gone so the worker can delete it.
  std::function<void(DownstreamConnection*)> on_gone;
  ListNode worker_node;

 private:
  // http2::SessionVisitor
  void on_stream_open(int32_t stream_id) override;
  void on_header(int32_t id, void* user, std::string_view name, std::string_view value) override;
  void on_headers_end(int32_t id, void* user, http2::HeadersKind kind, bool end_stream) override;
  void on_data(int32_t id, void* user, const uint8_t* data, size_t len) override;
  void on_data_end(int32_t id, void* user) override;
  void on_stream_close(int32_t id, void* user, uint32_t error_code) override;
  void on_goaway(int32_t, uint32_t) override {}
  void on_remote_settings() override {}
  http2::BodyChunk read_body(int32_t id, void* user, size_t max_length) override;
  void write_body(int32_t id, void* user, size_t length, Buffer& out) override;
  // H2Connection
  void on_closed(const Error& why) override;
  void on_receive_error(const Error& why) override;

  void maybe_finish_drain();

  WorkerContext& ctx_;
  const Router& router_;
  std::unordered_map<int32_t, std::unique_ptr<DownstreamStream>> streams_;
  std::unique_ptr<net::Timer> drain_timer_;
  bool draining_ = false;
  bool goaway_sent_ = false;
};

}  // namespace h2mesh::proxy
