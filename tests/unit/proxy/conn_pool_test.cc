// ConnPool behaviour when a connection is full, driven through the real data path:
//
//   test client (http2::Session, client role)
//     ── socketpair ──> DownstreamConnection ─> Router ─> ClusterManager ─> ConnPool
//     ── TCP 127.0.0.1 ──> fake backend (http2::Session, server role, MAX_CONCURRENT_STREAMS 2,
//                          never answers, so every call keeps its upstream stream open)
//
// Everything runs on one net::EventLoop in the test thread. A Script runs steps in order inside a
// single loop.run(): each step does something, then waits (polled by a 1 ms timer, never by
// sleeping) until its condition holds; a step that takes too long fails the test.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cluster/host_set.h"
#include "common/buffer.h"
#include "config/config.h"
#include "grpc/status.h"
#include "http2/session.h"
#include "fakes/loop_script.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "net/tcp_transport.h"
#include "proxy/cluster_manager.h"
#include "proxy/downstream.h"
#include "proxy/router.h"
#include "proxy/worker_context.h"

namespace h2mesh::proxy {
namespace {

using Script = h2mesh_test_fakes::LoopScript;

using Headers = std::vector<std::pair<std::string, std::string>>;
constexpr uint32_t kCancel = static_cast<uint32_t>(http2::H2Error::Cancel);

// ---- an HTTP/2 peer over a non-blocking socket ------------------------------------------------

struct CallLog {
  Headers headers;  // request headers (backend) or response headers (client)
  Headers trailers;
  std::vector<http2::HeadersKind> kinds;
  bool end_stream = false;  // the last HEADERS carried END_STREAM
  std::string body;
  bool closed = false;
  uint32_t close_code = 0;

  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers)
      if (n == name) return v;
    return "";
  }
};

// The test's own HTTP/2 endpoint: a socket, a Session and a log of what arrived per stream.
// Consumes every DATA byte at once; sends request bodies given in `bodies` (client role).
class Peer : public net::IoHandler, public http2::SessionVisitor {
 public:
  Peer(net::EventLoop& loop, int fd, http2::Role role, const http2::SessionOptions& opts)
      : loop_(loop), fd_(fd), session(role, *this, opts) {
    loop_.add(fd_, EPOLLIN | EPOLLRDHUP, this);
    flush();  // preface (client) and SETTINGS
  }
  ~Peer() override {
    loop_.remove(fd_);
    ::close(fd_);
  }

  std::map<int32_t, CallLog> calls;
  std::map<int32_t, std::string> bodies;  // request body to send per stream (client role)
  int opened = 0;
  bool eof = false;
  std::string error;

 private:
  net::EventLoop& loop_;
  int fd_;
  Buffer out_;
  bool want_out_ = false;
  std::map<int32_t, Headers> pending_;
  std::map<int32_t, size_t> sent_;

 public:
  http2::Session session;  // last: everything its callbacks touch exists before it

  // Sends what the session has queued.
  void flush() {
    if (auto rv = session.produce(out_, SIZE_MAX); !rv) error = rv.error().message;
    while (!out_.empty()) {
      ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) error = strerror(errno);
        break;
      }
      out_.drain(static_cast<size_t>(n));
    }
    bool want_out = !out_.empty() && !eof;
    if (want_out != want_out_ && !eof) {
      want_out_ = want_out;
      loop_.modify(fd_, EPOLLIN | EPOLLRDHUP | (want_out ? uint32_t{EPOLLOUT} : 0u), this);
    }
  }

  void on_io(uint32_t) override {
    uint8_t buf[16384];
    for (;;) {
      ssize_t n = ::read(fd_, buf, sizeof(buf));
      if (n > 0) {
        auto rv = session.receive(buf, static_cast<size_t>(n));
        if (!rv) error = rv.error().message;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        eof = true;
        loop_.remove(fd_);  // level-triggered: stop hearing about the closed socket
      }
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    if (!eof) flush();
  }

  // http2::SessionVisitor
  void on_stream_open(int32_t id) override {
    ++opened;
    calls[id];
  }
  void on_header(int32_t id, void*, std::string_view name, std::string_view value) override {
    pending_[id].emplace_back(std::string(name), std::string(value));
  }
  void on_headers_end(int32_t id, void*, http2::HeadersKind kind, bool end_stream) override {
    CallLog& c = calls[id];
    (kind == http2::HeadersKind::Trailers ? c.trailers : c.headers) = std::move(pending_[id]);
    pending_.erase(id);
    c.kinds.push_back(kind);
    c.end_stream = end_stream;
  }
  void on_headers_too_large(int32_t id, void*, http2::HeadersKind,
                            const http2::HeaderOverflow&) override {
    pending_.erase(id);
    session.reset_stream(id, static_cast<uint32_t>(http2::H2Error::Cancel));
  }
  void for_each_stream(const std::function<void(int32_t)>& fn) override {
    for (const auto& [id, c] : calls)
      if (!c.closed) fn(id);
  }
  void on_data(int32_t id, void*, const uint8_t* data, size_t len) override {
    calls[id].body.append(reinterpret_cast<const char*>(data), len);
    session.consume(id, len);
  }
  void on_data_end(int32_t, void*) override {}
  void on_stream_close(int32_t id, void*, uint32_t error_code) override {
    calls[id].closed = true;
    calls[id].close_code = error_code;
  }
  void on_goaway(int32_t, uint32_t) override {}
  void on_remote_settings() override {}
  http2::BodyChunk read_body(int32_t id, void*, size_t max_length) override {
    const std::string& b = bodies[id];
    size_t n = std::min(max_length, b.size() - sent_[id]);
    return http2::BodyChunk{n, sent_[id] + n == b.size(), false, false};
  }
  void write_body(int32_t id, void*, size_t length, Buffer& out) override {
    out.append(bodies[id].data() + sent_[id], length);
    sent_[id] += length;
  }

};

// ---- the fake backend -------------------------------------------------------------------------

// Accepts TCP connections on 127.0.0.1:0 and speaks HTTP/2 with a low stream limit. It never
// answers a call: every stream stays open until the proxy resets it.
class FakeBackend : public net::IoHandler {
 public:
  FakeBackend(net::EventLoop& loop, uint32_t max_concurrent_streams) : loop_(loop) {
    opts_.max_concurrent_streams = max_concurrent_streams;
    auto fd = net::listen_tcp(config::SocketAddress{"127.0.0.1", 0}, false);
    EXPECT_TRUE(fd.ok()) << fd.error().message;
    if (!fd.ok()) return;
    fd_ = *fd;
    port_ = net::local_port(fd_);
    loop_.add(fd_, EPOLLIN, this);
  }
  ~FakeBackend() override {
    conns.clear();
    if (fd_ >= 0) {
      loop_.remove(fd_);
      ::close(fd_);
    }
  }

  uint16_t port() const { return port_; }
  size_t accepted() const { return conns.size(); }
  int streams_opened() const {
    int n = 0;
    for (const auto& c : conns) n += c->opened;
    return n;
  }
  // The backend connection and stream that carry the call tagged `x-call: <tag>`, or null.
  const CallLog* find_call(const std::string& tag, size_t* conn_index = nullptr) const {
    for (size_t i = 0; i < conns.size(); ++i) {
      for (const auto& [id, call] : conns[i]->calls) {
        if (call.header("x-call") == tag) {
          if (conn_index) *conn_index = i;
          return &call;
        }
      }
    }
    return nullptr;
  }

  void on_io(uint32_t) override {
    for (;;) {
      int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      conns.push_back(std::make_unique<Peer>(loop_, fd, http2::Role::Server, opts_));
    }
  }

  std::vector<std::unique_ptr<Peer>> conns;

 private:
  net::EventLoop& loop_;
  http2::SessionOptions opts_;
  int fd_ = -1;
  uint16_t port_ = 0;
};


// ---- the fixture ------------------------------------------------------------------------------

constexpr char kCluster[] = "backend";

std::string grpc_frame(std::string_view payload) {
  std::string out(5, '\0');
  out[4] = static_cast<char>(payload.size());  // small test payloads only
  return out + std::string(payload);
}

class ConnPoolTest : public ::testing::Test {
 protected:
  // Builds the proxy side for a cluster whose only endpoint is 127.0.0.1:`port`. Retries are
  // off unless asked for, so each call is exactly one attempt on the pool.
  void start_proxy(uint16_t port, uint32_t max_connections, uint32_t max_pending,
                   uint32_t max_attempts = 1) {
    config::Cluster cluster;
    cluster.name = kCluster;
    cluster.endpoints.push_back(config::Endpoint{config::SocketAddress{"127.0.0.1", port}, 1});
    cluster.max_connections_per_endpoint = max_connections;
    cluster.max_pending_calls = max_pending;
    cluster.connect_timeout = std::chrono::milliseconds(2000);
    endpoint_key_ = cluster.endpoints[0].address.to_string();

    ctx_ = std::make_unique<WorkerContext>(loop_, 42, config::Buffers{});
    clusters_ = std::make_unique<ClusterManager>(*ctx_);
    ctx_->clusters = clusters_.get();
    clusters_->update(cluster::make_static_snapshot(cluster, 1));

    config::Route route;  // default route: every call goes to the cluster
    route.cluster = kCluster;
    route.retry.max_attempts = max_attempts;
    auto cfg = std::make_shared<config::Config>();
    cfg->listeners.emplace_back();
    cfg->listeners[0].name = "test";
    cfg->listeners[0].routes = {route};
    cfg->clusters = {cluster};
    listener_ = std::make_shared<const ListenerContext>(cfg, 0);

    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    http2::SessionOptions downstream_opts;
    downstream_ = std::make_unique<DownstreamConnection>(
        *ctx_, std::make_unique<net::TcpTransport>(loop_, sv[0], false), listener_,
        downstream_opts);
    client_ = std::make_unique<Peer>(loop_, sv[1], http2::Role::Client, http2::SessionOptions{});
  }

  void TearDown() override {
    // Client side first; then the downstream connection (its streams own UpstreamRequests that
    // point into the pools); then the pools; deferred work runs between the steps so no
    // callback outlives the object it was queued for.
    client_.reset();
    if (downstream_ && !downstream_->closed())
      downstream_->close(make_error(ErrorCode::Draining, "test over"));
    loop_.run_deferred();
    downstream_.reset();
    loop_.run_deferred();
    clusters_.reset();
    loop_.run_deferred();
    backend_.reset();
    loop_.run_deferred();
  }

  // Sends one unary call tagged `x-call: <tag>`; returns its stream id on the client.
  int32_t send_call(const std::string& tag) {
    const Headers headers = {{":method", "POST"},
                             {":scheme", "http"},
                             {":path", "/helloworld.Greeter/SayHello"},
                             {":authority", "greeter.test"},
                             {"content-type", "application/grpc"},
                             {"te", "trailers"},
                             {"grpc-timeout", "30S"},
                             {"x-call", tag}};
    std::vector<http2::HeaderRef> refs;
    for (const auto& [n, v] : headers) refs.push_back({n, v});
    auto id = client_->session.submit_request(refs, true, nullptr);
    EXPECT_TRUE(id.ok());
    if (!id.ok()) return -1;
    client_->bodies[*id] = grpc_frame("call " + tag);
    return *id;
  }
  void send_calls(std::initializer_list<const char*> tags, std::map<std::string, int32_t>& ids) {
    for (const char* t : tags) ids[t] = send_call(t);
    client_->flush();
  }

  const CallLog& reply(int32_t client_stream) { return client_->calls[client_stream]; }
  EndpointStats& endpoint_stats() { return ctx_->stats.clusters[kCluster].endpoints[endpoint_key_]; }
  ClusterStats& cluster_stats() { return ctx_->stats.clusters[kCluster]; }

  net::EventLoop loop_;
  std::unique_ptr<FakeBackend> backend_;
  std::unique_ptr<WorkerContext> ctx_;
  std::unique_ptr<ClusterManager> clusters_;
  ListenerContextPtr listener_;  // config, listener and router, as a worker shares them
  std::unique_ptr<DownstreamConnection> downstream_;
  std::unique_ptr<Peer> client_;
  std::string endpoint_key_;
};

// A trailers-only reply (HEADERS with END_STREAM, no DATA) carrying `grpc_status`.
::testing::AssertionResult is_trailers_only(const CallLog& c, int grpc_status) {
  if (c.kinds != std::vector<http2::HeadersKind>{http2::HeadersKind::Response} || !c.end_stream)
    return ::testing::AssertionFailure() << "not a trailers-only response";
  if (c.header(":status") != "200") return ::testing::AssertionFailure() << ":status " << c.header(":status");
  if (!c.body.empty()) return ::testing::AssertionFailure() << "has a body";
  if (c.header("grpc-status") != std::to_string(grpc_status))
    return ::testing::AssertionFailure()
           << "grpc-status " << c.header("grpc-status") << " (" << c.header("grpc-message") << ")";
  return ::testing::AssertionSuccess();
}

constexpr auto kStepLimit = std::chrono::seconds(10);

// ---- tests ------------------------------------------------------------------------------------

TEST_F(ConnPoolTest, FullConnectionsOpenAnotherThenCallsWaitThenOverflowFails) {
  backend_ = std::make_unique<FakeBackend>(loop_, /*max_concurrent_streams=*/2);
  start_proxy(backend_->port(), /*max_connections=*/2, /*max_pending=*/1);
  std::map<std::string, int32_t> id;
  size_t conn_of_1 = 99, conn_of_2 = 99, conn_of_3 = 99, conn_of_4 = 99, conn_of_5 = 99;

  Script script(loop_);
  script
      .step("call 1 opens the first upstream connection",
            [&] { send_calls({"1"}, id); },
            [&] { return backend_->find_call("1", &conn_of_1) != nullptr; })
      .step("call 2 shares the first connection",
            [&] {
              EXPECT_EQ(backend_->accepted(), 1u);
              send_calls({"2"}, id);
            },
            [&] { return backend_->find_call("2", &conn_of_2) != nullptr; })
      .step("call 3 finds the connection full and opens a second one",
            [&] {
              EXPECT_EQ(backend_->accepted(), 1u) << "two calls fit in one connection";
              EXPECT_EQ(conn_of_1, conn_of_2);
              send_calls({"3"}, id);
            },
            [&] { return backend_->find_call("3", &conn_of_3) != nullptr; })
      .step("call 4 shares the second connection",
            [&] {
              EXPECT_EQ(backend_->accepted(), 2u);
              EXPECT_NE(conn_of_3, conn_of_1);
              send_calls({"4"}, id);
            },
            [&] { return backend_->find_call("4", &conn_of_4) != nullptr; })
      .step("call 5 waits; call 6 overflows the pending queue and fails at once",
            [&] { send_calls({"5", "6"}, id); },
            [&] { return reply(id["6"]).closed; })
      .step("cancelling call 1 frees a slot on the first connection for call 5",
            [&] {
              EXPECT_TRUE(reply(id["5"]).kinds.empty()) << "call 5 must still be waiting";
              EXPECT_FALSE(reply(id["5"]).closed);
              EXPECT_EQ(backend_->find_call("5"), nullptr);
              EXPECT_EQ(backend_->streams_opened(), 4);
              client_->session.reset_stream(id["1"], kCancel);
              client_->flush();
            },
            [&] { return backend_->find_call("5", &conn_of_5) != nullptr; });
  ASSERT_EQ(script.run(kStepLimit), "");

  EXPECT_EQ(backend_->accepted(), 2u) << "max_connections_per_endpoint is 2";
  EXPECT_EQ(conn_of_4, conn_of_3);
  EXPECT_EQ(conn_of_5, conn_of_1) << "call 5 took the slot call 1 left";
  const CallLog* backend_call_1 = backend_->find_call("1");
  ASSERT_NE(backend_call_1, nullptr);
  EXPECT_TRUE(backend_call_1->closed);
  EXPECT_EQ(backend_call_1->close_code, kCancel) << "the client's cancel reaches the backend";
  EXPECT_EQ(backend_->streams_opened(), 5);

  // The overflowing call got a trailers-only answer from the proxy itself: the pool reports
  // ErrorCode::Overloaded, which grpc::status_for_error maps to UNAVAILABLE (14).
  const CallLog& six = reply(id["6"]);
  EXPECT_TRUE(is_trailers_only(six, static_cast<int>(grpc::StatusCode::Unavailable)));
  EXPECT_NE(six.header("grpc-message").find("max_pending_calls"), std::string::npos)
      << six.header("grpc-message");
  EXPECT_EQ(cluster_stats().pending_overflow, 1u);
  EXPECT_EQ(endpoint_stats().upstream_connections_total, 2u);
  EXPECT_EQ(endpoint_stats().upstream_connections, 2u);

  // Calls that reached the backend have no answer yet (it never answers); call 1 was cancelled.
  for (const char* t : {"2", "3", "4", "5"}) EXPECT_FALSE(reply(id[t]).closed) << "call " << t;
  EXPECT_TRUE(reply(id["1"]).closed);
}

TEST_F(ConnPoolTest, BackendSeesTheRemainingDeadlineAndTheRequest) {
  backend_ = std::make_unique<FakeBackend>(loop_, 2);
  start_proxy(backend_->port(), 2, 16);
  std::map<std::string, int32_t> id;
  const CallLog* at_backend = nullptr;
  Script script(loop_);
  script.step("one call reaches the backend with its body", [&] { send_calls({"a"}, id); },
              [&] {
                at_backend = backend_->find_call("a");
                return at_backend && !at_backend->body.empty();
              });
  ASSERT_EQ(script.run(kStepLimit), "");
  EXPECT_EQ(at_backend->header(":path"), "/helloworld.Greeter/SayHello");
  EXPECT_EQ(at_backend->body, grpc_frame("call a"));
  auto timeout = grpc::parse_timeout(at_backend->header("grpc-timeout"));
  ASSERT_TRUE(timeout.has_value()) << at_backend->header("grpc-timeout");
  EXPECT_LE(*timeout, std::chrono::seconds(30));
  EXPECT_GT(*timeout, std::chrono::seconds(20));
}

TEST_F(ConnPoolTest, PendingLimitAlsoCountsCallsWaitingForTheFirstConnection) {
  // Two calls in one write: the first waits for the connection to come up (it is pending), so
  // with max_pending_calls 1 the second overflows even though the connection will have room.
  backend_ = std::make_unique<FakeBackend>(loop_, 2);
  start_proxy(backend_->port(), 2, /*max_pending=*/1);
  std::map<std::string, int32_t> id;
  Script script(loop_);
  script.step("two calls at once on a cold pool", [&] { send_calls({"1", "2"}, id); },
              [&] { return reply(id["2"]).closed && backend_->find_call("1") != nullptr; });
  ASSERT_EQ(script.run(kStepLimit), "");
  EXPECT_TRUE(is_trailers_only(reply(id["2"]), static_cast<int>(grpc::StatusCode::Unavailable)));
  EXPECT_NE(reply(id["2"]).header("grpc-message").find("max_pending_calls"), std::string::npos);
  EXPECT_EQ(backend_->accepted(), 1u);
}

TEST_F(ConnPoolTest, WaitingCallsAreStartedWhenTheSecondConnectionComesUp) {
  // Stream limit 1 and a deep queue: calls 2..3 wait while the second connection connects,
  // and the pool never opens more than max_connections_per_endpoint.
  backend_ = std::make_unique<FakeBackend>(loop_, 1);
  start_proxy(backend_->port(), 2, 16);
  std::map<std::string, int32_t> id;
  Script script(loop_);
  script
      .step("call 1 fills the first connection", [&] { send_calls({"1"}, id); },
            [&] { return backend_->find_call("1") != nullptr; })
      .step("calls 2 and 3 arrive together", [&] { send_calls({"2", "3"}, id); },
            [&] { return backend_->find_call("2") != nullptr; })
      .step("call 3 runs once call 1 ends", [&] {
              EXPECT_EQ(backend_->find_call("3"), nullptr);
              client_->session.reset_stream(id["1"], kCancel);
              client_->flush();
            },
            [&] { return backend_->find_call("3") != nullptr; });
  ASSERT_EQ(script.run(kStepLimit), "");
  EXPECT_EQ(backend_->accepted(), 2u);
  EXPECT_FALSE(reply(id["2"]).closed);
  EXPECT_FALSE(reply(id["3"]).closed);
}

TEST_F(ConnPoolTest, RefusedConnectionGivesUnavailableAndBackoffFailsFast) {
  // A port with no listener: bind one, note its number, close it.
  auto fd = net::listen_tcp(config::SocketAddress{"127.0.0.1", 0}, false);
  ASSERT_TRUE(fd.ok());
  uint16_t port = net::local_port(*fd);
  ::close(*fd);
  start_proxy(port, 2, 16);
  std::map<std::string, int32_t> id;
  Script script(loop_);
  script
      .step("the first call fails when the connect is refused", [&] { send_calls({"1"}, id); },
            [&] { return reply(id["1"]).closed; })
      .step("the next call fails at once: the endpoint is in backoff", [&] { send_calls({"2"}, id); },
            [&] { return reply(id["2"]).closed; });
  ASSERT_EQ(script.run(kStepLimit), "");
  const int unavailable = static_cast<int>(grpc::StatusCode::Unavailable);
  EXPECT_TRUE(is_trailers_only(reply(id["1"]), unavailable));
  EXPECT_TRUE(is_trailers_only(reply(id["2"]), unavailable));
  EXPECT_NE(reply(id["1"]).header("grpc-message").find("failed"), std::string::npos)
      << reply(id["1"]).header("grpc-message");
  EXPECT_NE(reply(id["2"]).header("grpc-message").find("unavailable"), std::string::npos)
      << reply(id["2"]).header("grpc-message");
  EXPECT_GE(endpoint_stats().connect_failures, 1u);
  EXPECT_TRUE(endpoint_stats().in_backoff);
}

TEST_F(ConnPoolTest, RefusedConnectionIsRetriedThenAnsweredUnavailable) {
  // With the route's default retry policy (3 attempts) a refused connect is retried: the
  // backend provably never saw the call. The only endpoint stays in backoff, so every attempt
  // fails and the client still gets one UNAVAILABLE answer.
  auto fd = net::listen_tcp(config::SocketAddress{"127.0.0.1", 0}, false);
  ASSERT_TRUE(fd.ok());
  uint16_t port = net::local_port(*fd);
  ::close(*fd);
  start_proxy(port, 2, 16, /*max_attempts=*/3);
  std::map<std::string, int32_t> id;
  Script script(loop_);
  script.step("the call is answered after its retries", [&] { send_calls({"1"}, id); },
              [&] { return reply(id["1"]).closed; });
  ASSERT_EQ(script.run(kStepLimit), "");
  EXPECT_TRUE(is_trailers_only(reply(id["1"]), static_cast<int>(grpc::StatusCode::Unavailable)));
  EXPECT_EQ(cluster_stats().retries_connect_failure, 2u) << "attempts 2 and 3";
  EXPECT_EQ(endpoint_stats().upstream_connections_total, 1u)
      << "retries during backoff do not open connections";
}

TEST_F(ConnPoolTest, ZeroPendingCallsStillOpensAConnection) {
  backend_ = std::make_unique<FakeBackend>(loop_, 2);
  start_proxy(backend_->port(), 2, /*max_pending=*/0);
  std::map<std::string, int32_t> id;
  Script script(loop_);
  script
      .step("a call on a cold pool makes it connect", [&] { send_calls({"1"}, id); },
            [&] {
              // Ready means the backend's SETTINGS arrived: only then does a call need no queue.
              Error why;
              ConnPool* pool = clusters_->pick(*clusters_->find(kCluster), &why);
              return backend_->accepted() == 1 && pool && pool->any_ready();
            })
      .step("once connected, calls are served", [&] { send_calls({"2"}, id); },
            [&] { return backend_->find_call("2") != nullptr; });
  ASSERT_EQ(script.run(std::chrono::seconds(2)), "");
}

// Reloads hand a connection new rules: a call keeps the rules it was routed under until it ends,
// then the connection lets go of them, so a long-lived connection does not collect every config.
TEST_F(ConnPoolTest, ReplacedRulesLiveUntilTheLastCallRoutedUnderThemEnds) {
  backend_ = std::make_unique<FakeBackend>(loop_, 10);
  start_proxy(backend_->port(), 1, 10);
  auto second = std::make_shared<const ListenerContext>(listener_->config, 0);
  std::weak_ptr<const ListenerContext> watch = second;
  downstream_->set_rules(std::move(second));
  std::map<std::string, int32_t> id;
  Script script(loop_);
  script
      .step("call 1 starts under the second rules", [&] { send_calls({"1"}, id); },
            [&] { return backend_->find_call("1") != nullptr; })
      .step("a third config arrives while call 1 runs; then call 1 is cancelled",
            [&] {
              downstream_->set_rules(std::make_shared<const ListenerContext>(listener_->config, 0));
              EXPECT_FALSE(watch.expired()) << "call 1 still follows the second rules";
              client_->session.reset_stream(id["1"], kCancel);
              client_->flush();
            },
            [&] { return watch.expired(); })
      .step("call 2 follows the third rules", [&] { send_calls({"2"}, id); },
            [&] { return backend_->find_call("2") != nullptr; });
  ASSERT_EQ(script.run(kStepLimit), "");
  EXPECT_NE(downstream_->rules_context(), listener_) << "new calls follow the newest rules";
}

}  // namespace
}  // namespace h2mesh::proxy
