#pragma once

// The only place that knows libnghttp2. A Session works on byte buffers (receive / produce) and
// reports what happened to a SessionVisitor; it never touches sockets, so tests can wire a client
// session to a server session in memory.

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/buffer.h"
#include "common/result.h"
#include "common/time.h"
#include "http2/frame_guard.h"

struct nghttp2_session;

namespace h2mesh::http2 {

struct HeaderRef {
  std::string_view name;
  std::string_view value;
};

enum class HeadersKind {
  Request,   // server role: a new call's request headers
  Response,  // client role: the (first) response headers
  Trailers,  // either role: HEADERS after the initial ones
};

// Error codes of RST_STREAM and GOAWAY (RFC 9113 section 7).
enum class H2Error : uint32_t {
  NoError = 0x0,
  ProtocolError = 0x1,
  InternalError = 0x2,
  FlowControlError = 0x3,
  StreamClosed = 0x5,
  RefusedStream = 0x7,
  Cancel = 0x8,
  EnhanceYourCalm = 0xb,
};

// Which limit a header block went over (SessionOptions::max_header_list_bytes / _fields).
struct HeaderOverflow {
  bool fields = false;  // max_header_fields; otherwise max_header_list_bytes
  uint32_t limit = 0;
  // "more than max_header_fields (100)", for messages and logs.
  std::string describe() const {
    return std::string("more than ") + (fields ? "max_header_fields (" : "max_header_list_bytes (") +
           std::to_string(limit) + ")";
  }
};

struct BodyChunk {
  size_t length = 0;     // bytes to send now (the visitor copies them in write_body)
  bool eof = false;      // no more body after this chunk
  bool deferred = false; // nothing to send now; the owner calls resume_body() later
  // With eof: do not set END_STREAM on the last DATA because the visitor submitted trailers.
  bool trailers_follow = false;
};

// Receives session events, synchronously, from inside Session::receive() and Session::produce().
// `user` is the pointer given with set_stream_user() / submit_request(), or null. All methods
// run on the thread that owns the session.
class SessionVisitor {
 public:
  virtual ~SessionVisitor() = default;
  // Server role: the peer opened a stream. Typically creates a stream object and set_stream_user.
  virtual void on_stream_open(int32_t stream_id) = 0;
  virtual void on_header(int32_t stream_id, void* user, std::string_view name,
                         std::string_view value) = 0;
  virtual void on_headers_end(int32_t stream_id, void* user, HeadersKind kind, bool end_stream) = 0;
  // Instead of on_headers_end: the block went over a header limit. Its fields past the limit were
  // decoded (HPACK state must stay in step) but never passed to on_header.
  virtual void on_headers_too_large(int32_t stream_id, void* user, HeadersKind kind,
                                    const HeaderOverflow& overflow) = 0;
  // DATA payload. The visitor must eventually call consume(stream_id, len) (or the stream must
  // close) so the peer's flow-control window opens again.
  virtual void on_data(int32_t stream_id, void* user, const uint8_t* data, size_t len) = 0;
  virtual void on_data_end(int32_t stream_id, void* user) = 0;  // DATA carried END_STREAM
  // The stream is gone. After this, `user` is never passed again.
  virtual void on_stream_close(int32_t stream_id, void* user, uint32_t error_code) = 0;
  virtual void on_goaway(int32_t last_stream_id, uint32_t error_code) = 0;
  virtual void on_remote_settings() = 0;
  // A GOAWAY left (ours: a drain with NO_ERROR, or nghttp2's answer to a protocol violation).
  virtual void on_goaway_sent(uint32_t error_code) { (void)error_code; }
  // Body provider of streams submitted with a body.
  virtual BodyChunk read_body(int32_t stream_id, void* user, size_t max_length) = 0;
  // Append exactly `length` body bytes, as promised by read_body, to `out` and drop them.
  virtual void write_body(int32_t stream_id, void* user, size_t length, Buffer& out) = 0;
  // Calls `fn` with the id of every stream the visitor has open. Rare: a SETTINGS frame that
  // grows the streams' send windows is checked against each of them.
  virtual void for_each_stream(const std::function<void(int32_t)>& fn) = 0;
};

enum class Role { Client, Server };

struct SessionOptions {
  uint32_t max_concurrent_streams = 1024;  // advertised (server role)
  uint32_t stream_window = 1 << 20;        // advertised SETTINGS_INITIAL_WINDOW_SIZE
  uint32_t connection_window = 16 << 20;   // our receive window for the whole connection
  // Limits of one received header block (request headers, response headers or trailers):
  // decoded size as RFC 9113 section 6.5.2 counts it (name + value + 32 per field; advertised
  // as SETTINGS_MAX_HEADER_LIST_SIZE) and number of fields (each cookie crumb counts).
  uint32_t max_header_list_bytes = config::kDefaultMaxHeaderListBytes;
  uint32_t max_header_fields = config::kDefaultMaxHeaderFields;
  FloodLimits flood;
};

class Session {
 public:
  Session(Role role, SessionVisitor& visitor, const SessionOptions& options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Feeds received bytes; `now` refills the flood budgets. An error means the connection is
  // unusable; a GOAWAY may be queued (with ENHANCE_YOUR_CALM when a flood budget ran out).
  Result<size_t> receive(const uint8_t* data, size_t len, TimePoint now = TimePoint());
  // Serializes pending frames into `out` until nothing is pending or out holds >= `limit` bytes.
  Result<void> produce(Buffer& out, size_t limit);
  bool wants_read() const;
  bool wants_write() const;

  // Client role. Returns the new stream id, or an error (e.g. no stream ids left).
  Result<int32_t> submit_request(std::span<const HeaderRef> headers, bool has_body, void* user);
  // Server role.
  Result<void> submit_response(int32_t stream_id, std::span<const HeaderRef> headers,
                               bool has_body);
  Result<void> submit_trailers(int32_t stream_id, std::span<const HeaderRef> trailers);
  void resume_body(int32_t stream_id);
  void reset_stream(int32_t stream_id, uint32_t error_code);
  // Server role, for a response that refuses the request before it ended: once the response's
  // last frame has left, the stream is reset with NO_ERROR if the peer is still sending, so that
  // it stops (RFC 9113 section 8.1). A reset submitted earlier would drop the response.
  void stop_request_after_response(int32_t stream_id);
  void set_stream_user(int32_t stream_id, void* user);
  // Returns received DATA bytes to the flow-control windows (stream and connection).
  void consume(int32_t stream_id, size_t n);
  // For bytes of a stream that closed before they could be consumed.
  void consume_connection(size_t n);

  // Graceful shutdown, server role: first a notice (GOAWAY with the maximum id), later final.
  void submit_shutdown_notice();
  void submit_goaway(uint32_t error_code);
  void terminate(uint32_t error_code);
  // Keepalive: sends a PING; ping_outstanding() until its ACK comes back.
  void submit_ping();
  bool ping_outstanding() const { return ping_outstanding_; }
  // PINGs sent since the peer last sent HEADERS or DATA.
  uint32_t pings_without_data() const { return pings_without_data_; }
  // PINGs (not ACKs) the peer sent on this connection.
  uint64_t pings_received() const { return pings_received_; }

  uint32_t remote_max_concurrent_streams() const;
  // Client role: the id the next request gets. Ids run out at 2^31-1.
  uint32_t next_stream_id() const;
  // Id of the last stream the peer opened that we processed (server role).
  int32_t last_peer_stream_id() const;
  Role role() const { return role_; }

  // For the session's callbacks.
  SessionVisitor& visitor() { return visitor_; }
  // The user pointer of `stream_id`. The stream of the previous lookup is remembered: the
  // callbacks of one frame (a header block is a dozen of them) ask for the same stream.
  void* stream_user(int32_t stream_id);
  void forget_stream(int32_t stream_id);
  // Header-block accounting, from the header callbacks: a block starts; a field arrives (false:
  // the block is over a limit and the field must be dropped); the overflow of the block, if any.
  // A field is checked against what is left of both limits; only a cookie (its crumbs count as
  // fields) or a field over a limit takes the out-of-line path.
  void begin_header_block() {
    bytes_left_ = max_header_list_bytes_;
    fields_left_ = max_header_fields_;
  }
  bool account_header(std::string_view name, std::string_view value) {
    // name + value + 32, as SETTINGS_MAX_HEADER_LIST_SIZE counts (RFC 9113 section 6.5.2).
    const int64_t bytes = bytes_left_ - static_cast<int64_t>(name.size() + value.size() + 32);
    const int64_t fields = fields_left_ - 1;
    if ((bytes | fields) < 0 || name == "cookie") return account_header_slow(name, value);
    bytes_left_ = bytes;
    fields_left_ = fields;
    return true;
  }
  const HeaderOverflow* header_overflow() const { return fields_left_ < 0 ? &overflow_ : nullptr; }
  // From the frame callbacks: what we sent, what ended, what arrived.
  void on_sent_headers_or_data() { sent_since_ping_ = true; }
  // The last frame of our side of a stream left (server role: the response's).
  void on_sent_end_stream(int32_t stream_id) {
    if (!stop_after_response_.empty()) stop_request_now(stream_id);
  }
  void on_sent_reset(int32_t stream_id) { recent_resets_.add(stream_id); }
  void on_stream_ended(int32_t stream_id, uint32_t error_code) {
    if (error_code == static_cast<uint32_t>(H2Error::NoError)) rst_stream_.give_back();
    if (!stop_after_response_.empty()) forget_stop(stream_id);
  }
  void on_received_headers_or_data() { pings_without_data_ = 0; }
  void on_received_ping(bool ack) {
    if (ack) {
      ping_outstanding_ = false;
    } else {
      ++pings_received_;
    }
  }

 private:
  // What ended receive() early. The hot path passes only this code around; the details are in
  // members (nghttp2's return value, the stream) and become a message in fail(), once.
  enum class Fault : uint8_t {
    None,
    Nghttp2,         // nghttp2_session_mem_recv failed (recv_error_)
    EmptyDataFlood,  // ENHANCE_YOUR_CALM: a flood budget ran out
    PriorityFlood,
    RstStreamFlood,
    SettingsFlood,
    PingFlood,
    EmptyContinuationFlood,
    HeadersNotAbove,  // PROTOCOL_ERROR: HEADERS on a used stream id (fault_stream_)
    WindowOverflow,   // FLOW_CONTROL_ERROR: SETTINGS_INITIAL_WINDOW_SIZE (fault_stream_)
  };
  Fault scan(const uint8_t* data, size_t len, TimePoint now);
  Fault feed(const uint8_t* data, size_t len);
  // Frames whose check needs libnghttp2's view of the streams as the frames before them left
  // it: everything before them is handed on first.
  bool needs_current_state(const FrameHeader& h) const;
  // Frames no check has anything to say about (a new stream's HEADERS, which it records; DATA
  // with a payload on an open stream or on one of those; WINDOW_UPDATE): every frame of a
  // plain call skips check_frame.
  bool plain_frame(const FrameHeader& h);
  Fault check_frame(const FrameHeader& h, TimePoint now);
  // From `off`, at a frame boundary, passes over whole frames that are plain_frame()s; returns
  // where it stopped: at a frame that needs check_frame, with fewer than a frame header's bytes
  // left, or after a header whose payload continues in the next read (left to the scanner).
  size_t skip_plain_frames(const uint8_t* data, size_t off, size_t len);
  void begin_settings(const FrameHeader& h);
  Fault pass_settings_bytes(const uint8_t* data, size_t n, bool ends_frame);
  void parse_settings(const uint8_t* data, size_t len);
  Fault check_window_growth();
  bool is_closed_stream(int32_t stream_id);
  // The error receive() returns for `fault`; a violation of ours also terminates the session
  // (GOAWAY with its code).
  Error fail(Fault fault);
  bool account_header_slow(std::string_view name, std::string_view value);
  void stop_request_now(int32_t stream_id);
  void forget_stop(int32_t stream_id);

  nghttp2_session* session_ = nullptr;
  SessionVisitor& visitor_;
  Role role_;
  int32_t cached_id_ = -1;
  void* cached_user_ = nullptr;

  const uint32_t max_header_list_bytes_;
  const uint32_t max_header_fields_;
  // What the header block being received may still use of the limits. Only a block over a
  // limit has fields_left_ below zero (account_header_slow sets -1).
  int64_t bytes_left_ = 0;
  int64_t fields_left_ = 0;
  HeaderOverflow overflow_;

  FrameScanner scanner_;
  TokenBucket empty_frames_, priority_, settings_, ping_, rst_stream_, closed_answers_;
  RecentResets recent_resets_;
  int recv_error_ = 0;                  // Fault::Nghttp2: what nghttp2_session_mem_recv returned
  int32_t fault_stream_ = 0;            // HeadersNotAbove, WindowOverflow: the stream concerned
  int32_t max_peer_stream_id_ = 0;  // server role: the highest stream the peer opened
  int32_t fed_max_peer_stream_id_ = 0;  // ... among the frames libnghttp2 has seen
  bool sent_since_ping_ = true;     // HEADERS or DATA went out since the last PING came in
  bool ping_outstanding_ = false;   // our keepalive PING, not acknowledged yet
  // Streams to reset once their response has left (stop_request_after_response): refused
  // requests, rare; empty on the path of a normal call.
  std::vector<int32_t> stop_after_response_;
  uint32_t pings_without_data_ = 0;
  uint64_t pings_received_ = 0;
  // SETTINGS frame being passed on: its entries are checked before its last byte is.
  bool in_settings_ = false;
  uint8_t entry_[6] = {};
  uint8_t entry_have_ = 0;
  uint32_t max_initial_window_ = 0;
  bool initial_window_seen_ = false;
};

}  // namespace h2mesh::http2
