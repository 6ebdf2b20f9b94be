#pragma once

#include <memory>

#include "common/intrusive_list.h"
#include "common/pooled.h"
#include "http2/connection.h"
#include "proxy/stats.h"

namespace h2mesh::proxy {

class ConnPool;
class DownstreamStream;
class UpstreamConnection;

// One attempt of a downstream call on one endpoint. Owned by its DownstreamStream. Waits in
// its pool's pending queue, then runs as one stream on an UpstreamConnection. The upstream
// stream and this object point at each other without owning; whichever ends first unlinks both.
class UpstreamRequest final : public net::Deletable, public Pooled<UpstreamRequest> {
 public:
  UpstreamRequest(DownstreamStream& downstream, ConnPool& pool);
  ~UpstreamRequest() override;  // cancels the upstream stream if it is still open

  // --- from the pool ---
  void start_on(UpstreamConnection& conn);
  void fail(const Error& why);  // before a stream was opened: connect failure, overflow, ...
  // Leaves the pool queue or resets the upstream stream (RST_STREAM CANCEL) right away; after
  // this no event reaches the downstream stream. Called by the destructor too.
  void cancel();

  // --- from the downstream stream ---
  void request_data_available();  // more request body (or its end) can be sent
  void consume_response(size_t n);  // response bytes were passed on to the client

  // --- from the upstream connection ---
  void on_header(std::string_view name, std::string_view value);
  void on_headers_end(http2::HeadersKind kind, bool end_stream);
  void on_headers_too_large(http2::HeadersKind kind, const http2::HeaderOverflow& overflow);
  void on_data(const uint8_t* data, size_t len);
  void on_data_end();
  void on_stream_closed(uint32_t error_code);
  void on_connection_lost(const Error& why);
  http2::BodyChunk read_body(size_t max_length);
  void write_body(size_t length, Buffer& out);

  ConnPool& pool() { return pool_; }
  int32_t stream_id() const { return stream_id_; }
  ListNode pool_node;  // pending queue of the pool
  ListNode conn_node;  // active streams of the connection

 private:
  void unlink_stream();
  void response_done();

  DownstreamStream& downstream_;
  ConnPool& pool_;
  UpstreamConnection* conn_ = nullptr;
  int32_t stream_id_ = -1;
  bool response_complete_ = false;
  int grpc_status_ = -1;  // from the response's grpc-status, once seen
  size_t unconsumed_ = 0;  // response bytes received but not yet passed on
};

// An HTTP/2 client connection to one endpoint. Owned by its ConnPool.
class UpstreamConnection final : public http2::Connection {
 public:
  UpstreamConnection(ConnPool& pool, std::unique_ptr<net::Transport> transport,
                     const http2::SessionOptions& opts, Duration connect_timeout);
  ~UpstreamConnection() override;

  bool ready() const { return ready_ && !draining_ && !closed(); }
  bool draining() const { return draining_; }
  // Streams this connection may still open under the backend's SETTINGS_MAX_CONCURRENT_STREAMS.
  uint32_t free_slots() const;
  uint32_t active_streams() const { return static_cast<uint32_t>(requests_.size()); }
  void add_request(UpstreamRequest* req);
  void remove_request(UpstreamRequest* req);
  // No new streams; close once the last one ends.
  void drain();

 private:
  void on_stream_open(int32_t) override {}
  void on_header(int32_t id, void* user, std::string_view name, std::string_view value) override;
  void on_headers_end(int32_t id, void* user, http2::HeadersKind kind, bool end_stream) override;
  void on_headers_too_large(int32_t id, void* user, http2::HeadersKind kind,
                            const http2::HeaderOverflow& overflow) override;
  void on_data(int32_t id, void* user, const uint8_t* data, size_t len) override;
  void on_data_end(int32_t id, void* user) override;
  void on_stream_close(int32_t id, void* user, uint32_t error_code) override;
  void for_each_stream(const std::function<void(int32_t)>& fn) override;
  void on_goaway(int32_t last_stream_id, uint32_t error_code) override;
  void on_remote_settings() override;
  http2::BodyChunk read_body(int32_t id, void* user, size_t max_length) override;
  void write_body(int32_t id, void* user, size_t length, Buffer& out) override;
  void on_connected() override;
  void on_closed(const Error& why) override;
  void maybe_close_drained();
  void arm_idle_timer();

  ConnPool& pool_;
  IntrusiveList<UpstreamRequest, &UpstreamRequest::conn_node> requests_;
  net::Timer idle_timer_;
  net::Timer connect_timer_;
  bool ready_ = false;
  bool draining_ = false;
};

}  // namespace h2mesh::proxy
