#include "proxy_harness.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cluster/host_set.h"
#include "common/buffer.h"
#include "common/log.h"
#include "config/config.h"
#include "frame_checker.h"
#include "http2/session.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "net/tcp_transport.h"
#include "proxy/cluster_manager.h"
#include "proxy/downstream.h"
#include "proxy/router.h"
#include "proxy/worker_context.h"

namespace h2mesh::fuzz {
namespace {

constexpr char kClientMagic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// A step is over when nothing moved for this many loop iterations (loopback connects and
// writes complete within one), or after kMaxTicks iterations (a peer that never goes quiet).
constexpr int kIdleTicks = 3;
constexpr int kMaxTicks = 200;

[[noreturn]] void fail(const char* what) {
  fprintf(stderr, "proxy harness: %s\n", what);
  abort();
}

// Frames of `data` (9-byte header plus the length it declares); a short tail is one more piece.
std::vector<std::pair<const uint8_t*, size_t>> split_frames(const uint8_t* data, size_t size) {
  std::vector<std::pair<const uint8_t*, size_t>> out;
  size_t pos = 0;
  while (pos < size) {
    size_t n = size - pos;
    if (n >= 9) {
      size_t len = (size_t{data[pos]} << 16) | (size_t{data[pos + 1]} << 8) | data[pos + 2];
      n = std::min(n, 9 + len);
    }
    out.emplace_back(data + pos, n);
    pos += n;
  }
  return out;
}

// Made once per process: the backend's listening socket, and a bound port nothing listens on
// (a connect there is refused at once: the "dead" cluster).
struct Ports {
  int listen_fd = -1;
  uint16_t backend = 0;
  uint16_t refused = 0;
};

const Ports& ports() {
  static const Ports p = [] {
    Ports out;
    auto fd = net::listen_tcp(config::SocketAddress{"127.0.0.1", 0}, false);
    if (!fd) fail("cannot listen on 127.0.0.1");
    out.listen_fd = *fd;
    out.backend = net::local_port(*fd);
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      fail("cannot bind the refused port");
    out.refused = net::local_port(s);  // kept bound, never listening, for the process lifetime
    log::set_level(log::Level::Error);
    return out;
  }();
  return p;
}

// The proxy's configuration: windows at the smallest the config allows, so flow control is
// reached with small inputs; retries without backoff, so they happen within a step.
std::shared_ptr<config::Config> make_config() {
  auto cfg = std::make_shared<config::Config>();
  cfg->buffers.stream_window_bytes = 64 * 1024;
  cfg->buffers.connection_window_bytes = 64 * 1024;

  config::Cluster backend;
  backend.name = "backend";
  backend.endpoints.push_back({config::SocketAddress{"127.0.0.1", ports().backend}, 1});
  backend.max_connections_per_endpoint = 2;
  backend.max_pending_calls = 4;
  backend.reconnect_backoff_base = config::Millis(0);
  backend.reconnect_backoff_max = config::Millis(0);
  config::Cluster dead = backend;
  dead.name = "dead";
  dead.endpoints[0].address.port = ports().refused;
  cfg->clusters = {backend, dead};

  config::Listener l;
  l.name = "fuzz";
  config::Route to_dead;
  to_dead.match = config::RouteMatch{"", "", "/fuzz.Dead/Call"};
  to_dead.cluster = "dead";
  to_dead.retry.max_attempts = 2;
  to_dead.retry.backoff_base = to_dead.retry.backoff_max = config::Millis(0);
  config::Route greeter;
  greeter.match = config::RouteMatch{"", "/helloworld.Greeter/", ""};
  greeter.cluster = "backend";
  greeter.retry.max_attempts = 3;
  greeter.retry.retry_on = {14};
  greeter.retry.backoff_base = greeter.retry.backoff_max = config::Millis(0);
  greeter.retry.replay_buffer_bytes = 1024;
  l.routes = {to_dead, greeter};  // anything else: no route, UNIMPLEMENTED
  cfg->listeners = {l};
  return cfg;
}

class Harness;

// A socket of the harness: the client's end of the socketpair or one accepted backend
// connection. What the proxy writes on it is checked; what this side sends comes either from
// the fuzzer (no session) or from a correct HTTP/2 peer.
class Wire final : public net::IoHandler, public http2::SessionVisitor {
 public:
  enum class Kind { Scripted, EchoBackend, GrpcClient };
  Wire(Harness& h, int fd, Kind kind, const char* name);
  ~Wire() override;

  void send(const uint8_t* data, size_t len);
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void reset_stream(int32_t id) {
    session_->reset_stream(id, static_cast<uint32_t>(http2::H2Error::Cancel));
    pump();
  }
  void on_io(uint32_t events) override;

  // http2::SessionVisitor (the correct peers)
  void on_stream_open(int32_t) override {}
  void on_header(int32_t id, void*, std::string_view name, std::string_view value) override;
  void on_headers_end(int32_t id, void*, http2::HeadersKind kind, bool end_stream) override;
  void on_data(int32_t id, void*, const uint8_t*, size_t len) override;
  void on_data_end(int32_t id, void*) override { respond(id); }
  void on_stream_close(int32_t id, void*, uint32_t) override { calls_.erase(id); }
  void on_headers_too_large(int32_t id, void*, http2::HeadersKind,
                            const http2::HeaderOverflow&) override {
    calls_.erase(id);
    reset_stream(id);
  }
  void for_each_stream(const std::function<void(int32_t)>& fn) override {
    for (const auto& [id, call] : calls_) fn(id);
  }
  void on_goaway(int32_t, uint32_t) override {}
  void on_remote_settings() override {}
  void on_goaway_sent(uint32_t code) override {
    if (code != 0) fail("a correct peer ended the connection with an error");
  }
  http2::BodyChunk read_body(int32_t id, void*, size_t max_length) override;
  void write_body(int32_t id, void*, size_t length, Buffer& out) override;

 private:
  struct Call {
    std::string body;   // request body (echoed) or request to send (client)
    size_t sent = 0;
    int status = 0;     // x-fuzz-status: answer trailers-only with this grpc-status
    bool refuse = false;  // x-fuzz-refuse: RST_STREAM(REFUSED_STREAM)
    bool answered = false;
  };
  void respond(int32_t id);
  void pump();  // the session's pending frames onto the socket
  void flush();

  Harness& h_;
  int fd_;
  Kind kind_;
  FrameChecker checker_;
  Buffer out_;
  bool want_out_ = false;
  bool eof_ = false;
  std::map<int32_t, Call> calls_;

 public:
  std::unique_ptr<http2::Session> session_;  // correct peers only
};

class Harness final : public net::IoHandler {
 public:
  explicit Harness(bool fuzz_client);
  ~Harness() override;

  // Runs every step, each followed by a settled loop, then tears everything down.
  void run(std::vector<std::function<void()>> steps);
  void moved() { ++activity_; }
  net::EventLoop& loop() { return loop_; }
  Wire* client() { return client_.get(); }
  Wire* first_backend() { return backends_.empty() ? nullptr : backends_.front().get(); }
  void on_io(uint32_t) override;  // the backend's listening socket

 private:
  void tick();

  const bool fuzz_client_;
  net::EventLoop loop_;
  std::unique_ptr<proxy::WorkerContext> ctx_;
  std::unique_ptr<proxy::ClusterManager> clusters_;
  std::unique_ptr<proxy::DownstreamConnection> downstream_;
  std::unique_ptr<Wire> client_;
  std::vector<std::unique_ptr<Wire>> backends_;
  std::vector<std::function<void()>> steps_;
  size_t next_step_ = 0;
  uint64_t activity_ = 0, seen_activity_ = 0;
  int idle_ = 0, ticks_ = 0;
};

Wire::Wire(Harness& h, int fd, Kind kind, const char* name)
    : h_(h), fd_(fd), kind_(kind), checker_(kind != Kind::EchoBackend, name,
                                           /*peer_is_strict=*/kind != Kind::Scripted) {
  h_.loop().add(fd_, EPOLLIN | EPOLLRDHUP, this);
  if (kind_ == Kind::Scripted) return;
  http2::SessionOptions opts;
  opts.stream_window = 64 * 1024;
  session_ = std::make_unique<http2::Session>(
      kind_ == Kind::GrpcClient ? http2::Role::Client : http2::Role::Server, *this, opts);
  if (kind_ == Kind::GrpcClient) {
    // Two calls: a unary one with a deadline, and one the client cancels in the last step.
    const http2::HeaderRef headers[] = {{":method", "POST"},
                                        {":scheme", "http"},
                                        {":path", "/helloworld.Greeter/SayHello"},
                                        {":authority", "greeter.test"},
                                        {"content-type", "application/grpc"},
                                        {"te", "trailers"},
                                        {"grpc-timeout", "20S"}};
    for (int i = 0; i < 2; ++i) {
      auto id = session_->submit_request(std::span(headers, i == 0 ? 7 : 6), true, nullptr);
      if (!id) fail("submit_request");
      calls_[*id].body = std::string("\0\0\0\0\7fuzzing", 12);
    }
  }
  pump();
}

Wire::~Wire() {
  h_.loop().remove(fd_);
  ::close(fd_);
}

void Wire::send(const uint8_t* data, size_t len) {
  if (eof_) return;
  checker_.on_peer_bytes(data, len);
  out_.append(data, len);
  flush();
}

void Wire::flush() {
  while (!out_.empty()) {
    ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) out_.clear();  // the proxy closed
      break;
    }
    out_.drain(static_cast<size_t>(n));
    h_.moved();
  }
  bool want = !out_.empty();
  if (want != want_out_ && !eof_) {
    want_out_ = want;
    h_.loop().modify(fd_, EPOLLIN | EPOLLRDHUP | (want ? uint32_t{EPOLLOUT} : 0u), this);
  }
}

void Wire::pump() {
  if (!session_ || eof_) return;
  Buffer produced;
  if (!session_->produce(produced, SIZE_MAX)) fail("a correct peer failed to produce frames");
  if (!produced.empty()) send(produced.data(), produced.size());
}

void Wire::on_io(uint32_t events) {
  if (events & EPOLLOUT) flush();
  uint8_t buf[16384];
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n > 0) {
      h_.moved();
      checker_.on_proxy_bytes(buf, static_cast<size_t>(n));
      if (session_ && !session_->receive(buf, static_cast<size_t>(n)))
        fail("a correct peer could not take what the proxy sent");
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      eof_ = true;
      h_.moved();
      h_.loop().remove(fd_);  // level-triggered: stop hearing about a closed socket
    }
    break;
  }
  pump();
}

void Wire::on_header(int32_t id, void*, std::string_view name, std::string_view value) {
  if (kind_ != Kind::EchoBackend) return;
  Call& c = calls_[id];
  // The request's metadata chooses the backend's answer, so the fuzzer reaches retries and
  // failed attempts through the client's bytes alone.
  if (name == "x-fuzz-status") c.status = value.empty() ? 2 : (value[0] - '0') & 0xf;
  if (name == "x-fuzz-refuse") c.refuse = true;
}

void Wire::on_headers_end(int32_t id, void*, http2::HeadersKind, bool end_stream) {
  if (end_stream) respond(id);
}

void Wire::on_data(int32_t id, void*, const uint8_t* data, size_t len) {
  if (kind_ == Kind::EchoBackend) calls_[id].body.append(reinterpret_cast<const char*>(data), len);
  session_->consume(id, len);
}

void Wire::respond(int32_t id) {
  if (kind_ != Kind::EchoBackend) return;
  Call& c = calls_[id];
  if (c.answered) return;
  c.answered = true;
  if (c.refuse) {
    session_->reset_stream(id, static_cast<uint32_t>(http2::H2Error::RefusedStream));
  } else if (c.status != 0) {
    std::string status = std::to_string(c.status);
    const http2::HeaderRef h[] = {{":status", "200"},
                                  {"content-type", "application/grpc"},
                                  {"grpc-status", status},
                                  {"grpc-message", "fuzz backend"}};
    (void)session_->submit_response(id, h, false);
  } else {
    const http2::HeaderRef h[] = {{":status", "200"}, {"content-type", "application/grpc"}};
    (void)session_->submit_response(id, h, true);
  }
  pump();
}

http2::BodyChunk Wire::read_body(int32_t id, void*, size_t max_length) {
  Call& c = calls_[id];
  size_t n = std::min(max_length, c.body.size() - c.sent);
  bool eof = c.sent + n == c.body.size();
  http2::BodyChunk chunk{n, eof, false, false};
  if (eof && kind_ == Kind::EchoBackend) {
    const http2::HeaderRef t[] = {{"grpc-status", "0"}};
    if (session_->submit_trailers(id, t)) chunk.trailers_follow = true;
  }
  return chunk;
}

void Wire::write_body(int32_t id, void*, size_t length, Buffer& out) {
  Call& c = calls_[id];
  out.append(c.body.data() + c.sent, length);
  c.sent += length;
}

Harness::Harness(bool fuzz_client) : fuzz_client_(fuzz_client) {
  auto cfg = make_config();
  ctx_ = std::make_unique<proxy::WorkerContext>(loop_, 42, cfg->buffers);
  ctx_->report_outlier = [](const std::string&, const std::string&) {};
  clusters_ = std::make_unique<proxy::ClusterManager>(*ctx_);
  ctx_->clusters = clusters_.get();
  for (const auto& c : cfg->clusters) clusters_->update(cluster::make_static_snapshot(c, 1));
  auto listener = std::make_shared<const proxy::ListenerContext>(cfg, 0);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
    fail("socketpair");
  http2::SessionOptions opts;
  opts.stream_window = cfg->buffers.stream_window_bytes;
  opts.connection_window = cfg->buffers.connection_window_bytes;
  opts.max_concurrent_streams = 8;
  downstream_ = std::make_unique<proxy::DownstreamConnection>(
      *ctx_, std::make_unique<net::TcpTransport>(loop_, sv[0], false), listener, opts);
  downstream_->on_gone = [](proxy::DownstreamConnection*) {};  // deleted at the end of the run
  loop_.add(ports().listen_fd, EPOLLIN, this);
  client_ = std::make_unique<Wire>(*this, sv[1],
                                   fuzz_client_ ? Wire::Kind::Scripted : Wire::Kind::GrpcClient,
                                   "proxy to client");
}

Harness::~Harness() {
  // As a worker tears down: the client, then the connection (its streams hold requests that
  // point into the pools), then the pools, then the backends; deferred work runs in between so
  // that no callback outlives its object.
  client_.reset();
  if (!downstream_->closed()) downstream_->close(make_error(ErrorCode::Draining, "fuzz run over"));
  loop_.run_deferred();
  downstream_.reset();
  loop_.run_deferred();
  clusters_.reset();
  loop_.run_deferred();
  backends_.clear();
  loop_.remove(ports().listen_fd);
  // Connections the proxy opened but the backend never accepted stay in the listen queue.
  for (;;) {
    int fd = ::accept4(ports().listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    ::close(fd);
  }
}

void Harness::on_io(uint32_t) {
  for (;;) {
    int fd = ::accept4(ports().listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    moved();
    backends_.push_back(std::make_unique<Wire>(
        *this, fd, fuzz_client_ ? Wire::Kind::EchoBackend : Wire::Kind::Scripted,
        "proxy to backend"));
  }
}

void Harness::run(std::vector<std::function<void()>> steps) {
  steps_ = std::move(steps);
  // The tick is posted, not a timer: it runs once per loop iteration without making the loop
  // sleep, and sees the iteration's I/O as done.
  loop_.post([this] { tick(); });
  loop_.run();
}

void Harness::tick() {
  if (activity_ != seen_activity_) {
    seen_activity_ = activity_;
    idle_ = 0;
  } else {
    ++idle_;
  }
  if (idle_ >= kIdleTicks || ++ticks_ >= kMaxTicks) {
    if (next_step_ == steps_.size()) {
      loop_.stop();
      return;
    }
    idle_ = 0;
    ticks_ = 0;
    steps_[next_step_++]();
  }
  loop_.post([this] { tick(); });
}

}  // namespace

void run_downstream_input(const uint8_t* data, size_t size) {
  Harness h(/*fuzz_client=*/true);
  std::vector<std::function<void()>> steps;
  steps.push_back([&h] {
    h.client()->send(reinterpret_cast<const uint8_t*>(kClientMagic), sizeof kClientMagic - 1);
  });
  for (auto [frame, len] : split_frames(data, size))
    steps.push_back([&h, frame = frame, len = len] { h.client()->send(frame, len); });
  steps.push_back([&h] { h.client()->shutdown_write(); });
  h.run(std::move(steps));
}

void run_upstream_input(const uint8_t* data, size_t size) {
  Harness h(/*fuzz_client=*/false);
  std::vector<std::function<void()>> steps;
  steps.push_back([] {});  // the client's calls reach the backend
  for (auto [frame, len] : split_frames(data, size)) {
    steps.push_back([&h, frame = frame, len = len] {
      if (Wire* b = h.first_backend()) b->send(frame, len);
    });
  }
  steps.push_back([&h] { h.client()->reset_stream(3); });
  steps.push_back([&h] { h.client()->shutdown_write(); });
  h.run(std::move(steps));
}

}  // namespace h2mesh::fuzz
