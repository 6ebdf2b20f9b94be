// Header handling through http2::Session: one gRPC unary call per iteration between a client
// and a server Session wired together by in-memory buffers (no sockets). The client submits
// the request headers and a 12-byte body; the server takes them, answers with headers, a
// 17-byte body and trailers; the client takes everything. The connection (SETTINGS exchange)
// is set up before the timed loop and lives across calls, so HPACK's dynamic table is warm, as
// on a long-lived gRPC connection.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/buffer.h"
#include "http2/session.h"

namespace h2mesh::http2 {
namespace {

constexpr size_t kNoLimit = SIZE_MAX;

// gRPC frame (flag 0, length 7) of HelloRequest{name: "bench"}: 12 bytes.
constexpr std::string_view kRequestBody{
    "\x00\x00\x00\x00\x07\x0a\x05"
    "bench",
    12};
// gRPC frame (flag 0, length 12) of HelloReply{message: "Hello, Bob"}: 17 bytes.
constexpr std::string_view kResponseBody{
    "\x00\x00\x00\x00\x0c\x0a\x0a"
    "Hello, Bob",
    17};

// What grpc-c++ 1.51 sends for a unary call with a deadline.
const HeaderRef kRequestHeaders[] = {
    {":method", "POST"},
    {":scheme", "http"},
    {":path", "/helloworld.Greeter/SayHello"},
    {":authority", "greeter.example:50051"},
    {"te", "trailers"},
    {"content-type", "application/grpc"},
    {"user-agent", "grpc-c++/1.51.1 grpc-c/29.0.0 (linux; chttp2)"},
    {"grpc-accept-encoding", "identity, deflate, gzip"},
    {"grpc-timeout", "9998m"},
};
const HeaderRef kResponseHeaders[] = {{":status", "200"}, {"content-type", "application/grpc"}};
const HeaderRef kTrailers[] = {{"grpc-status", "0"}, {"grpc-message", ""}};
// What the proxy answers itself (no route, overload): headers and status in one HEADERS frame.
const HeaderRef kTrailersOnly[] = {{":status", "200"},
                                   {"content-type", "application/grpc"},
                                   {"grpc-status", "12"},
                                   {"grpc-message", "no route"}};

// The request headers plus `count` custom metadata entries with typical lengths.
std::vector<HeaderRef> request_with_metadata(size_t count, std::vector<std::string>& storage) {
  storage.clear();
  storage.reserve(2 * count);  // no reallocation: the refs point into these strings
  std::vector<HeaderRef> headers(std::begin(kRequestHeaders), std::end(kRequestHeaders));
  for (size_t i = 0; i < count; ++i) {
    storage.push_back("x-bench-meta-" + std::to_string(i));
    storage.push_back("value-" + std::to_string(i) + "-0123456789abcdef");
    headers.push_back({storage[storage.size() - 2], storage.back()});
  }
  return headers;
}

// One side's view of the call in flight (the bench runs one call at a time).
struct CallState {
  size_t header_fields = 0;
  size_t header_bytes = 0;
  bool headers_done = false;
  bool trailers_done = false;
  bool end_stream = false;  // HEADERS or DATA with END_STREAM arrived
  size_t body_bytes = 0;
  bool closed = false;
  uint32_t close_code = 0;
  // Outbound body and the trailers submitted when it ends (the proxy's way).
  std::string_view out;
  size_t sent = 0;
  std::span<const HeaderRef> out_trailers;
};

// A visitor that does the least a real one must: count header bytes, consume DATA, track state.
class Peer final : public SessionVisitor {
 public:
  explicit Peer(Role role) : session(role, *this, SessionOptions{}) {}

  CallState call;
  int32_t stream = 0;   // the call's stream id
  bool failed = false;  // an event the bench did not expect
  Session session;      // last: the visitor's state exists before any callback can run

  void on_stream_open(int32_t stream_id) override {
    stream = stream_id;
    call = CallState{};
    session.set_stream_user(stream_id, &call);
  }
  void on_header(int32_t, void* user, std::string_view name, std::string_view value) override {
    CallState* c = state_of(user);
    if (!c) return;
    ++c->header_fields;
    c->header_bytes += name.size() + value.size();
  }
  void on_headers_end(int32_t, void* user, HeadersKind kind, bool end_stream) override {
    CallState* c = state_of(user);
    if (!c) return;
    (kind == HeadersKind::Trailers ? c->trailers_done : c->headers_done) = true;
    c->end_stream = c->end_stream || end_stream;
  }
  void on_headers_too_large(int32_t, void*, HeadersKind, const HeaderOverflow&) override {
    failed = true;
  }
  void for_each_stream(const std::function<void(int32_t)>& fn) override {
    if (stream > 0 && !call.closed) fn(stream);
  }
  void on_data(int32_t stream_id, void* user, const uint8_t*, size_t len) override {
    if (CallState* c = state_of(user)) c->body_bytes += len;
    session.consume(stream_id, len);
  }
  void on_data_end(int32_t, void* user) override {
    if (CallState* c = state_of(user)) c->end_stream = true;
  }
  void on_stream_close(int32_t, void* user, uint32_t error_code) override {
    CallState* c = state_of(user);
    if (!c) return;
    c->closed = true;
    c->close_code = error_code;
  }
  void on_goaway(int32_t, uint32_t) override { failed = true; }
  void on_remote_settings() override {}
  BodyChunk read_body(int32_t stream_id, void* user, size_t max_length) override {
    CallState* c = state_of(user);
    if (!c) return BodyChunk{0, true, false, false};
    size_t n = std::min(max_length, c->out.size() - c->sent);
    BodyChunk chunk{n, c->sent + n == c->out.size(), false, false};
    if (chunk.eof && !c->out_trailers.empty()) {
      if (!session.submit_trailers(stream_id, c->out_trailers)) failed = true;
      chunk.trailers_follow = true;
    }
    return chunk;
  }
  void write_body(int32_t, void* user, size_t length, Buffer& out) override {
    CallState* c = state_of(user);
    if (!c) return;
    out.append(c->out.data() + c->sent, length);
    c->sent += length;
  }

 private:
  CallState* state_of(void* user) {
    if (!user) failed = true;
    return static_cast<CallState*>(user);
  }
};

// A client and a server session with the connection preface and SETTINGS exchanged.
class Connection {
 public:
  Connection() : client_(Role::Client), server_(Role::Server) {
    // Preface, SETTINGS, then the ACKs: two rounds each way.
    for (int i = 0; i < 3; ++i) {
      flush(client_, server_);
      flush(server_, client_);
    }
    wire_bytes_ = 0;
  }

  // One unary call; false when anything went wrong. `trailers_only`: the server answers with
  // a single HEADERS frame carrying the status (no body, no separate trailers).
  bool unary_call(std::span<const HeaderRef> request_headers, bool trailers_only) {
    client_.call = CallState{};
    client_.call.out = kRequestBody;
    auto id = client_.session.submit_request(request_headers, true, &client_.call);
    if (id) client_.stream = *id;
    if (!id) return false;
    // Request HEADERS and DATA (END_STREAM) to the server, plus any WINDOW_UPDATE owed.
    flush(client_, server_);
    CallState& request = server_.call;
    if (!request.headers_done || !request.end_stream) return false;
    if (trailers_only) {
      if (!server_.session.submit_response(*id, kTrailersOnly, false)) return false;
    } else {
      request.out = kResponseBody;
      request.out_trailers = kTrailers;
      if (!server_.session.submit_response(*id, kResponseHeaders, true)) return false;
    }
    // Response HEADERS, DATA and trailers to the client.
    flush(server_, client_);
    const CallState& response = client_.call;
    const size_t response_body = trailers_only ? 0 : kResponseBody.size();
    return request.closed && request.body_bytes == kRequestBody.size() && response.closed &&
           response.close_code == 0 && response.end_stream &&
           response.trailers_done != trailers_only && response.body_bytes == response_body &&
           !client_.failed && !server_.failed;
  }

  bool healthy() const { return ok_; }
  // Stream ids run out at 2^31; a long benchmark run starts a new connection well before.
  bool worn_out() const { return client_.session.next_stream_id() > (1u << 30); }
  // Bytes both ways since the handshake or the last reset.
  uint64_t wire_bytes() const { return wire_bytes_; }
  void reset_wire_bytes() { wire_bytes_ = 0; }
  size_t server_header_fields() const { return server_.call.header_fields; }

 private:
  void flush(Peer& from, Peer& to) {
    wire_.clear();
    if (!from.session.produce(wire_, kNoLimit)) ok_ = false;
    if (wire_.empty()) return;
    wire_bytes_ += wire_.size();
    auto taken = to.session.receive(wire_.data(), wire_.size());
    if (!taken || *taken != wire_.size()) ok_ = false;
  }

  Peer client_;
  Peer server_;
  Buffer wire_;  // reused: no allocation per call once it has grown
  uint64_t wire_bytes_ = 0;
  bool ok_ = true;
};

void run_calls(benchmark::State& state, std::span<const HeaderRef> request_headers,
               bool trailers_only) {
  auto conn = std::make_unique<Connection>();
  uint64_t wire_bytes = 0;  // of the timed calls
  // One untimed call: HPACK tables and nghttp2's stream memory are warm for the first timed one.
  if (!conn->unary_call(request_headers, trailers_only) || !conn->healthy()) {
    state.SkipWithError("warm-up call failed");
    return;
  }
  conn->reset_wire_bytes();
  for (auto _ : state) {
    bool ok = conn->unary_call(request_headers, trailers_only);
    benchmark::DoNotOptimize(ok);
    if (!ok) {
      state.SkipWithError("call failed");
      break;
    }
    if (conn->worn_out()) {
      state.PauseTiming();
      wire_bytes += conn->wire_bytes();
      conn = std::make_unique<Connection>();
      state.ResumeTiming();
    }
  }
  wire_bytes += conn->wire_bytes();
  state.SetItemsProcessed(state.iterations());
  state.counters["wire_bytes_per_call"] =
      benchmark::Counter(static_cast<double>(wire_bytes), benchmark::Counter::kAvgIterations);
  state.counters["request_fields"] = static_cast<double>(conn->server_header_fields());
}

void BM_GrpcUnaryCall(benchmark::State& state) { run_calls(state, kRequestHeaders, false); }
BENCHMARK(BM_GrpcUnaryCall);

void BM_GrpcUnaryCallWithMetadata(benchmark::State& state) {
  std::vector<std::string> storage;
  const std::vector<HeaderRef> headers =
      request_with_metadata(static_cast<size_t>(state.range(0)), storage);
  run_calls(state, headers, false);
}
BENCHMARK(BM_GrpcUnaryCallWithMetadata)->ArgName("metadata")->Arg(20);

void BM_GrpcTrailersOnlyAnswer(benchmark::State& state) { run_calls(state, kRequestHeaders, true); }
BENCHMARK(BM_GrpcTrailersOnlyAnswer);

// The cost a new client connection adds before its first call: two sessions, the preface and
// the SETTINGS exchange, then one call with cold HPACK tables.
void BM_GrpcFirstCallOnNewConnection(benchmark::State& state) {
  for (auto _ : state) {
    Connection conn;
    bool ok = conn.unary_call(kRequestHeaders, false) && conn.healthy();
    benchmark::DoNotOptimize(ok);
    if (!ok) {
      state.SkipWithError("call failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GrpcFirstCallOnNewConnection);

}  // namespace
}  // namespace h2mesh::http2
