#pragma once

// Socket-free gRPC peers for tests on simulated time (net::SimulatedClock):
//
//   TestClient (http2::Connection, client role) ── MemoryTransport pair ──> the proxy's
//   DownstreamConnection;  the proxy's ConnPools ── MemoryNetwork (a net::Connector) ──>
//   GrpcBackend (one http2::Connection, server role, per accepted transport).
//
// Everything runs on the test's event loop; what each peer saw is logged with the loop's time,
// so tests assert exact simulated times.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/time.h"
#include "grpc/status.h"
#include "http2/connection.h"
#include "net/event_loop.h"
#include "net/memory_transport.h"

namespace h2mesh_test_fakes {

namespace h = h2mesh;
using Headers = std::vector<std::pair<std::string, std::string>>;

inline std::string find_header(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers)
    if (n == name) return v;
  return "";
}

// One stream as one peer saw it.
struct StreamLog {
  Headers headers;  // request headers (backend) or response headers (client)
  Headers trailers;
  std::string body;
  h::TimePoint opened{};
  std::optional<h::TimePoint> closed;  // when the stream ended
  uint32_t close_code = 0;             // RST_STREAM code, 0 for a normal end

  std::string header(std::string_view name) const { return find_header(headers, name); }
  // grpc-status from the trailers, or from the headers of a trailers-only response.
  std::string grpc_status() const {
    std::string s = find_header(trailers, "grpc-status");
    return s.empty() ? header("grpc-status") : s;
  }
};

// Shared by TestClient and the backend's connections: logs streams, consumes every DATA byte at
// once, sends the bodies it was given.
class LoggingConnection : public h::http2::Connection {
 public:
  LoggingConnection(h::net::EventLoop& loop, std::unique_ptr<h::net::Transport> transport,
                    h::http2::Role role, const h::http2::SessionOptions& opts)
      : h::http2::Connection(loop, std::move(transport), role, opts) {}

  std::map<int32_t, StreamLog> streams;
  std::optional<h::TimePoint> goaway_at;  // first GOAWAY received
  std::optional<h::TimePoint> closed_at;  // transport gone
  std::string closed_why;

  h::http2::Session& session() { return session_; }
  // Like SIGSTOP on the process at this end: nothing is read, nothing answered, until resumed.
  void stall(bool stalled) {
    static_cast<h::net::MemoryTransport&>(*transport_).set_stalled(stalled);
  }
  void flush_now() { schedule_flush(); }

 protected:
  // Called when a stream's END_STREAM arrived (server role: the whole request is in).
  virtual void on_request_complete(int32_t) {}

  std::map<int32_t, std::string> to_send_;  // body per stream, sent with END_STREAM or trailers
  std::map<int32_t, Headers> trailers_to_send_;

 private:
  void on_stream_open(int32_t id) override { streams[id].opened = loop_.now(); }
  void on_header(int32_t id, void*, std::string_view name, std::string_view value) override {
    pending_[id].emplace_back(std::string(name), std::string(value));
  }
  void on_headers_end(int32_t id, void*, h::http2::HeadersKind kind, bool end_stream) override {
    StreamLog& s = streams[id];
    (kind == h::http2::HeadersKind::Trailers ? s.trailers : s.headers) = std::move(pending_[id]);
    pending_.erase(id);
    if (end_stream) on_request_complete(id);
  }
  void on_headers_too_large(int32_t id, void*, h::http2::HeadersKind,
                            const h::http2::HeaderOverflow&) override {
    pending_.erase(id);
    session_.reset_stream(id, static_cast<uint32_t>(h::http2::H2Error::Cancel));
    schedule_flush();
  }
  void for_each_stream(const std::function<void(int32_t)>& fn) override {
    for (const auto& [id, s] : streams)
      if (!s.closed) fn(id);
  }
  void on_data(int32_t id, void*, const uint8_t* data, size_t len) override {
    streams[id].body.append(reinterpret_cast<const char*>(data), len);
    session_.consume(id, len);
  }
  void on_data_end(int32_t id, void*) override { on_request_complete(id); }
  void on_stream_close(int32_t id, void*, uint32_t code) override {
    streams[id].closed = loop_.now();
    streams[id].close_code = code;
  }
  void on_goaway(int32_t, uint32_t) override {
    if (!goaway_at) goaway_at = loop_.now();
  }
  void on_remote_settings() override {}
  h::http2::BodyChunk read_body(int32_t id, void*, size_t max_length) override {
    const std::string& b = to_send_[id];
    size_t n = std::min(max_length, b.size() - sent_[id]);
    h::http2::BodyChunk chunk{n, sent_[id] + n == b.size(), false, false};
    if (chunk.eof) {
      auto t = trailers_to_send_.find(id);
      if (t != trailers_to_send_.end()) {
        std::vector<h::http2::HeaderRef> refs;
        for (const auto& [k, v] : t->second) refs.push_back({k, v});
        if (session_.submit_trailers(id, refs)) chunk.trailers_follow = true;
      }
    }
    return chunk;
  }
  void write_body(int32_t id, void*, size_t length, h::Buffer& out) override {
    out.append(to_send_[id].data() + sent_[id], length);
    sent_[id] += length;
  }
  void on_closed(const h::Error& why) override {
    closed_at = loop_.now();
    closed_why = why.message;
  }

  std::map<int32_t, Headers> pending_;
  std::map<int32_t, size_t> sent_;
};

// A gRPC client on one connection to the proxy.
class TestClient final : public LoggingConnection {
 public:
  TestClient(h::net::EventLoop& loop, std::unique_ptr<h::net::Transport> transport)
      : LoggingConnection(loop, std::move(transport), h::http2::Role::Client, {}) {}

  // A unary SayHello call with `extra` metadata (e.g. grpc-timeout). Returns the stream id.
  int32_t call(const Headers& extra = {}, std::string payload = "hello") {
    Headers headers = {{":method", "POST"},
                       {":scheme", "http"},
                       {":path", "/helloworld.Greeter/SayHello"},
                       {":authority", "greeter.test"},
                       {"content-type", "application/grpc"},
                       {"te", "trailers"}};
    headers.insert(headers.end(), extra.begin(), extra.end());
    std::vector<h::http2::HeaderRef> refs;
    for (const auto& [n, v] : headers) refs.push_back({n, v});
    auto id = session_.submit_request(refs, true, nullptr);
    if (!id) return -1;
    std::string frame(5, '\0');
    frame[4] = static_cast<char>(payload.size());  // small payloads only
    to_send_[*id] = frame + payload;
    streams[*id].opened = loop_.now();
    schedule_flush();
    return *id;
  }
  bool done(int32_t id) { return streams[id].closed.has_value(); }
};

// How a backend answers a call. Chosen per call by request metadata (x-status, x-delay-ms,
// x-hang), or for every call by GrpcBackend::behaviour.
struct Behaviour {
  int status = 0;       // grpc-status; non-zero statuses are answered trailers-only
  h::Duration delay{};  // answer after this long
  bool hang = false;    // never answer
};

class GrpcBackend;

// One accepted connection of a GrpcBackend.
class BackendConnection final : public LoggingConnection {
 public:
  BackendConnection(GrpcBackend& owner, h::net::EventLoop& loop,
                    std::unique_ptr<h::net::Transport> transport,
                    const h::http2::SessionOptions& opts)
      : LoggingConnection(loop, std::move(transport), h::http2::Role::Server, opts),
        owner_(owner) {}

 private:
  void on_request_complete(int32_t id) override;
  void answer(int32_t id, int status);

  GrpcBackend& owner_;
  std::map<int32_t, std::unique_ptr<h::net::Timer>> timers_;
};

// A gRPC server on one address of a MemoryNetwork.
class GrpcBackend {
 public:
  GrpcBackend(h::net::EventLoop& loop, h::http2::SessionOptions opts = {})
      : loop_(loop), opts_(opts) {}
  ~GrpcBackend() {
    for (auto& c : conns) c->close(h::make_error(h::ErrorCode::Draining, "backend gone"));
    loop_.run_deferred();
  }

  void accept(std::unique_ptr<h::net::Transport> transport) {
    conns.push_back(std::make_unique<BackendConnection>(*this, loop_, std::move(transport), opts_));
  }
  // Every request that reached this backend, in arrival order, with its connection's index.
  std::vector<const StreamLog*> requests() const {
    std::vector<const StreamLog*> out;
    for (const auto& c : conns)
      for (const auto& [id, s] : c->streams) out.push_back(&s);
    std::stable_sort(out.begin(), out.end(),
                     [](const StreamLog* a, const StreamLog* b) { return a->opened < b->opened; });
    return out;
  }

  Behaviour behaviour;
  std::vector<std::unique_ptr<BackendConnection>> conns;

 private:
  friend class BackendConnection;
  h::net::EventLoop& loop_;
  h::http2::SessionOptions opts_;
};

inline void BackendConnection::on_request_complete(int32_t id) {
  const StreamLog& s = streams[id];
  if (s.header(":path").empty()) return;  // the end of a response: not ours
  Behaviour b = owner_.behaviour;
  if (auto v = s.header("x-status"); !v.empty()) b.status = std::stoi(v);
  if (auto v = s.header("x-delay-ms"); !v.empty())
    b.delay = std::chrono::milliseconds(std::stoi(v));
  if (!s.header("x-hang").empty()) b.hang = true;
  if (b.hang) return;
  if (b.delay == h::Duration::zero()) {
    answer(id, b.status);
    return;
  }
  auto timer = std::make_unique<h::net::Timer>(loop_, [this, id, status = b.status] {
    if (!streams[id].closed) answer(id, status);
  });
  timer->arm(b.delay);
  timers_[id] = std::move(timer);
}

inline void BackendConnection::answer(int32_t id, int status) {
  if (status != 0) {
    std::string st = std::to_string(status);
    const h::http2::HeaderRef only[] = {{":status", "200"},
                                        {"content-type", "application/grpc"},
                                        {"grpc-status", st},
                                        {"grpc-message", "backend says so"}};
    (void)session_.submit_response(id, only, false);
  } else {
    const h::http2::HeaderRef headers[] = {{":status", "200"},
                                           {"content-type", "application/grpc"}};
    to_send_[id] = streams[id].body;  // echo the request message
    trailers_to_send_[id] = {{"grpc-status", "0"}};
    (void)session_.submit_response(id, headers, true);
  }
  schedule_flush();
}

// A net::Connector over memory: addresses map to backends; other addresses refuse the connect
// (reported when the transport starts, as a TCP RST would be), or never answer when black-holed.
class MemoryNetwork final : public h::net::Connector {
 public:
  explicit MemoryNetwork(h::net::EventLoop& loop) : loop_(loop) {}

  void add(const std::string& address, GrpcBackend* backend) { backends_[address] = backend; }
  void remove(const std::string& address) { backends_.erase(address); }
  void black_hole(const std::string& address) { black_holes_.push_back(address); }

  h::Result<std::unique_ptr<h::net::Transport>> connect(
      h::net::EventLoop& loop, const h::config::SocketAddress& address) override {
    const std::string key = address.to_string();
    connects.emplace_back(key, loop.now());
    if (std::find(black_holes_.begin(), black_holes_.end(), key) != black_holes_.end())
      return std::unique_ptr<h::net::Transport>(
          h::net::MemoryTransport::unconnectable(loop, std::nullopt));
    auto it = backends_.find(key);
    if (it == backends_.end())
      return std::unique_ptr<h::net::Transport>(h::net::MemoryTransport::unconnectable(
          loop, h::make_error(h::ErrorCode::ConnectFailed, "Connection refused")));
    auto pair = h::net::MemoryTransport::pair(loop, loop_);
    it->second->accept(std::move(pair.server));
    return std::unique_ptr<h::net::Transport>(std::move(pair.client));
  }

  std::vector<std::pair<std::string, h::TimePoint>> connects;  // every attempt, in order

 private:
  h::net::EventLoop& loop_;
  std::map<std::string, GrpcBackend*> backends_;
  std::vector<std::string> black_holes_;
};

}  // namespace h2mesh_test_fakes
