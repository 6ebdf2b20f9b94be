// What the net::Transport seam costs on the data path: gRPC calls between a client and a server
// http2::Connection (the class every proxy connection is) on one event loop, joined by a
// Unix socketpair through net::TcpTransport, as in production, or by net::MemoryTransport.
// One iteration is one call: request headers and a 12-byte body out, headers, a body and
// trailers back, through epoll and real reads and writes. The connection is set up before the
// timed loop; the next call starts when the previous one closed, so each call pays its own
// wake-ups, reads and writes (no batching across calls).

#include <benchmark/benchmark.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "http2/connection.h"
#include "net/event_loop.h"
#include "net/memory_transport.h"
#include "net/simulated_clock.h"
#include "net/tcp_transport.h"

namespace h2mesh::http2 {
namespace {

constexpr std::string_view kRequestBody{
    "\x00\x00\x00\x00\x07\x0a\x05"
    "bench",
    12};
const HeaderRef kRequestHeaders[] = {
    {":method", "POST"},
    {":scheme", "http"},
    {":path", "/helloworld.Greeter/SayHello"},
    {":authority", "greeter.example:50051"},
    {"te", "trailers"},
    {"content-type", "application/grpc"},
    {"grpc-timeout", "9998m"},
};
const HeaderRef kResponseHeaders[] = {{":status", "200"}, {"content-type", "application/grpc"}};
const HeaderRef kTrailers[] = {{"grpc-status", "0"}};

// Answers every call with `response_bytes` of body and trailers.
class Server final : public Connection {
 public:
  Server(net::EventLoop& loop, std::unique_ptr<net::Transport> t, size_t response_bytes)
      : Connection(loop, std::move(t), Role::Server, SessionOptions{}),
        body_(response_bytes, 'x') {}

 private:
  void on_stream_open(int32_t id) override { stream_ = id; }
  void on_header(int32_t, void*, std::string_view, std::string_view) override {}
  void on_headers_end(int32_t, void*, HeadersKind, bool) override {}
  void on_headers_too_large(int32_t id, void*, HeadersKind, const HeaderOverflow&) override {
    session_.reset_stream(id, static_cast<uint32_t>(H2Error::Cancel));
  }
  void for_each_stream(const std::function<void(int32_t)>& fn) override {
    if (stream_ > 0) fn(stream_);
  }
  void on_data(int32_t id, void*, const uint8_t*, size_t len) override {
    session_.consume(id, len);
  }
  void on_data_end(int32_t id, void*) override {
    sent_ = 0;
    (void)session_.submit_response(id, kResponseHeaders, true);
    schedule_flush();
  }
  void on_stream_close(int32_t, void*, uint32_t) override {}
  void on_goaway(int32_t, uint32_t) override {}
  void on_remote_settings() override {}
  BodyChunk read_body(int32_t id, void*, size_t max_length) override {
    size_t n = std::min(max_length, body_.size() - sent_);
    BodyChunk chunk{n, sent_ + n == body_.size(), false, false};
    if (chunk.eof && session_.submit_trailers(id, kTrailers)) chunk.trailers_follow = true;
    return chunk;
  }
  void write_body(int32_t, void*, size_t length, Buffer& out) override {
    out.append(body_.data() + sent_, length);
    sent_ += length;
  }
  void on_closed(const Error&) override {}

  std::string body_;
  size_t sent_ = 0;
  int32_t stream_ = 0;
};

// Sends one call at a time while the benchmark wants more, then stops the loop.
class Client final : public Connection {
 public:
  Client(net::EventLoop& loop, std::unique_ptr<net::Transport> t, benchmark::State& state)
      : Connection(loop, std::move(t), Role::Client, SessionOptions{}), state_(state) {}

  void next_call() {
    if (!state_.KeepRunning()) {
      done = true;
      return;
    }
    sent_ = 0;
    auto id = session_.submit_request(kRequestHeaders, true, nullptr);
    if (!id) {
      state_.SkipWithError("submit_request failed");
      done = true;
      return;
    }
    stream_ = *id;
    schedule_flush();
  }
  bool done = false;
  uint64_t response_bytes = 0;

 private:
  void on_stream_open(int32_t) override {}
  void on_header(int32_t, void*, std::string_view, std::string_view) override {}
  void on_headers_end(int32_t, void*, HeadersKind, bool) override {}
  void on_headers_too_large(int32_t, void*, HeadersKind, const HeaderOverflow&) override {
    state_.SkipWithError("response headers over the limit");
    done = true;
  }
  void for_each_stream(const std::function<void(int32_t)>& fn) override {
    if (stream_ > 0) fn(stream_);
  }
  void on_data(int32_t id, void*, const uint8_t*, size_t len) override {
    response_bytes += len;
    session_.consume(id, len);
  }
  void on_data_end(int32_t, void*) override {}
  void on_stream_close(int32_t, void*, uint32_t) override { next_call(); }
  void on_goaway(int32_t, uint32_t) override {}
  void on_remote_settings() override {}
  BodyChunk read_body(int32_t, void*, size_t max_length) override {
    size_t n = std::min(max_length, kRequestBody.size() - sent_);
    return BodyChunk{n, sent_ + n == kRequestBody.size(), false, false};
  }
  void write_body(int32_t, void*, size_t length, Buffer& out) override {
    out.append(kRequestBody.data() + sent_, length);
    sent_ += length;
  }
  void on_closed(const Error& why) override {
    if (!done) state_.SkipWithError(("connection closed: " + why.message).c_str());
    done = true;
  }

  benchmark::State& state_;
  size_t sent_ = 0;
  int32_t stream_ = 0;
};

void report(benchmark::State& state, const Client& client) {
  state.counters["response_bytes_per_call"] = benchmark::Counter(
      static_cast<double>(client.response_bytes), benchmark::Counter::kAvgIterations);
  state.SetBytesProcessed(static_cast<int64_t>(client.response_bytes));
}

// Production's path: epoll, socket reads and writes, TcpTransport.
void BM_CallsOverTcpTransport(benchmark::State& state) {
  net::EventLoop loop;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  auto server =
      std::make_unique<Server>(loop, std::make_unique<net::TcpTransport>(loop, sv[0], false),
                               static_cast<size_t>(state.range(0)));
  auto client = std::make_unique<Client>(
      loop, std::make_unique<net::TcpTransport>(loop, sv[1], false), state);
  client->schedule_flush();  // preface and SETTINGS
  net::Timer first(loop, [&] { client->next_call(); });
  net::Timer poll(loop, [&] {
    if (client->done)
      loop.stop();
    else
      poll.arm(std::chrono::milliseconds(1));
  });
  loop.update_now();
  first.arm(Duration::zero());
  poll.arm(Duration::zero());
  loop.run();
  report(state, *client);
  client->close(make_error(ErrorCode::Ok, "done"));
  server->close(make_error(ErrorCode::Ok, "done"));
  loop.run_deferred();
}
BENCHMARK(BM_CallsOverTcpTransport)->Arg(17)->Arg(64 * 1024)->Arg(1 << 20);

// The tests' path: MemoryTransport on a simulated clock, driven by run_ready().
void BM_CallsOverMemoryTransport(benchmark::State& state) {
  net::SimulatedClock clock;
  net::EventLoop loop(clock);
  auto pair = net::MemoryTransport::pair(loop, loop);
  auto server =
      std::make_unique<Server>(loop, std::move(pair.server), static_cast<size_t>(state.range(0)));
  auto client = std::make_unique<Client>(loop, std::move(pair.client), state);
  clock.run_ready();
  client->next_call();
  while (!client->done) {
    if (!loop.run_ready()) {
      state.SkipWithError("call stalled");
      break;
    }
  }
  report(state, *client);
  client->close(make_error(ErrorCode::Ok, "done"));
  server->close(make_error(ErrorCode::Ok, "done"));
  loop.run_deferred();
}
BENCHMARK(BM_CallsOverMemoryTransport)->Arg(17)->Arg(64 * 1024)->Arg(1 << 20);

}  // namespace
}  // namespace h2mesh::http2
