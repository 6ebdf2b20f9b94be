// The proxy's timeouts, backoffs, ejections and budgets on simulated time, without sockets:
//
//   TestClient ── MemoryTransport ──> DownstreamConnection ─> Router ─> ClusterManager ─>
//   ConnPool ── MemoryNetwork ──> GrpcBackend(s)          ClusterRegistry (outlier ejection)
//
// Everything runs on one EventLoop reading a net::SimulatedClock. advance_until() steps from
// timer to timer and stops at the moment a condition becomes true, so each test asserts the
// exact simulated time at which the proxy acted, and a minute of timeouts runs in milliseconds.

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/host_set.h"
#include "cluster/registry.h"
#include "config/config.h"
#include "fakes/memory_grpc.h"
#include "grpc/status.h"
#include "net/event_loop.h"
#include "net/memory_transport.h"
#include "net/simulated_clock.h"
#include "proxy/cluster_manager.h"
#include "proxy/downstream.h"
#include "proxy/router.h"
#include "proxy/worker_context.h"

namespace h2mesh::proxy {
namespace {

using namespace std::chrono_literals;
using h2mesh_test_fakes::find_header;
using h2mesh_test_fakes::GrpcBackend;
using h2mesh_test_fakes::MemoryNetwork;
using h2mesh_test_fakes::StreamLog;
using h2mesh_test_fakes::TestClient;

constexpr char kCluster[] = "backend";
constexpr char kA[] = "10.0.0.1:50051";
constexpr char kB[] = "10.0.0.2:50051";
constexpr uint32_t kCancel = static_cast<uint32_t>(http2::H2Error::Cancel);
const std::string kUnavailable = std::to_string(static_cast<int>(grpc::StatusCode::Unavailable));

config::SocketAddress address(const std::string& host_port) {
  auto colon = host_port.rfind(':');
  return config::SocketAddress{host_port.substr(0, colon),
                               static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1)))};
}

class SimulatedTimeTest : public ::testing::Test {
 protected:
  SimulatedTimeTest() {
    cluster_.name = kCluster;
    cluster_.panic_threshold_percent = 0;
    route_.cluster = kCluster;
    route_.retry.max_attempts = 1;  // tests that retry say so
    listener_cfg_.name = "test";
  }

  // Builds the worker's side (and the main thread's registry, on the same loop) for a cluster
  // of `endpoints`; those listed in `backends` answer, the others refuse connections.
  void start(const std::vector<std::string>& endpoints) {
    for (const auto& e : endpoints) cluster_.endpoints.push_back(config::Endpoint{address(e), 1});
    ctx_ = std::make_unique<WorkerContext>(loop_, 42, config::Buffers{});
    ctx_->connector = &network_;
    clusters_ = std::make_unique<ClusterManager>(*ctx_);
    ctx_->clusters = clusters_.get();
    registry_ = std::make_unique<cluster::ClusterRegistry>(loop_, std::vector{cluster_});
    for (const auto& snap : registry_->snapshots()) clusters_->update(snap);
    // As in production, reports and snapshots cross between "threads" through post().
    registry_->set_publish([this](cluster::ClusterSnapshotPtr snap) {
      loop_.post([this, snap] { clusters_->update(snap); });
    });
    ctx_->report_outlier = [this](const std::string& c, const std::string& h) {
      loop_.post([this, c, h] { registry_->report_outlier(c, h); });
    };
    listener_cfg_.routes = {route_};
    auto cfg = std::make_shared<config::Config>();
    cfg->listeners = {listener_cfg_};
    cfg->clusters = {cluster_};
    listener_ = std::make_shared<const ListenerContext>(cfg, 0);
  }

  GrpcBackend& backend(const std::string& addr) {
    auto& b = backends_[addr];
    if (!b) {
      b = std::make_unique<GrpcBackend>(loop_);
      network_.add(addr, b.get());
    }
    return *b;
  }

  // A client connected to the proxy's listener.
  std::unique_ptr<TestClient> connect_client() {
    auto pair = net::MemoryTransport::pair(loop_, loop_);
    downstreams_.push_back(std::make_unique<DownstreamConnection>(
        *ctx_, std::move(pair.server), listener_, http2::SessionOptions{}));
    return std::make_unique<TestClient>(loop_, std::move(pair.client));
  }
  // A connected raw client transport, for clients that misbehave at the byte level. It is
  // stalled (reports nothing) so that unread bytes do not keep the loop busy; the test reads
  // what arrived with read_all().
  std::unique_ptr<net::MemoryTransport> connect_raw() {
    auto pair = net::MemoryTransport::pair(loop_, loop_);
    downstreams_.push_back(std::make_unique<DownstreamConnection>(
        *ctx_, std::move(pair.server), listener_, http2::SessionOptions{}));
    pair.client->start(raw_handler_);
    clock_.run_ready();
    EXPECT_FALSE(pair.client->connecting());
    pair.client->set_stalled(true);
    return std::move(pair.client);
  }
  static std::string read_all(net::MemoryTransport& raw) {
    raw.set_stalled(false);
    std::string in(raw.unread(), '\0');
    if (!in.empty()) {
      EXPECT_EQ(raw.read(reinterpret_cast<uint8_t*>(in.data()), in.size()).bytes, in.size());
    }
    raw.set_stalled(true);
    return in;
  }
  struct IgnoreTransport final : net::TransportHandler {
    void on_transport_connected(const Error*) override {}
    void on_transport_ready(bool, bool) override {}
  } raw_handler_;

  // One call, run until it is answered (at most `limit` of simulated time).
  const StreamLog& call_and_wait(TestClient& client, const h2mesh_test_fakes::Headers& extra = {},
                                 Duration limit = 60s) {
    int32_t id = client.call(extra);
    EXPECT_TRUE(clock_.advance_until([&] { return client.done(id); }, limit));
    return client.streams[id];
  }

  bool ejected(const std::string& host) { return registry_->health()[kCluster][host].ejected; }
  ClusterStats& cluster_stats() { return ctx_->stats.clusters[kCluster]; }
  Duration since(TimePoint t) const { return clock_.now() - t; }

  void TearDown() override {
    // Clients, then the proxy's connections (their streams own requests pointing into the
    // pools), then pools and registry, then backends; deferred work runs between the steps.
    clients_gone();
    for (auto& d : downstreams_)
      if (!d->closed()) d->close(make_error(ErrorCode::Draining, "test over"));
    loop_.run_deferred();
    downstreams_.clear();
    loop_.run_deferred();
    clusters_.reset();
    registry_.reset();
    loop_.run_deferred();
    backends_.clear();
    loop_.run_ready();
  }
  virtual void clients_gone() {}

  config::Cluster cluster_;
  config::Route route_;
  config::Listener listener_cfg_;

  net::SimulatedClock clock_;  // outlives the loop
  net::EventLoop loop_{clock_};
  MemoryNetwork network_{loop_};
  std::map<std::string, std::unique_ptr<GrpcBackend>> backends_;
  std::unique_ptr<WorkerContext> ctx_;
  std::unique_ptr<ClusterManager> clusters_;
  std::unique_ptr<cluster::ClusterRegistry> registry_;
  ListenerContextPtr listener_;
  std::vector<std::unique_ptr<DownstreamConnection>> downstreams_;
};

// ---- deadlines ---------------------------------------------------------------------------------

TEST_F(SimulatedTimeTest, DeadlineExpiresAtExactlyTheClientsGrpcTimeout) {
  start({kA});
  backend(kA).behaviour.hang = true;
  auto client = connect_client();
  const TimePoint t0 = clock_.now();
  const StreamLog& reply = call_and_wait(*client, {{"grpc-timeout", "250m"}});

  EXPECT_EQ(since(t0), 250ms);
  EXPECT_EQ(reply.grpc_status(),
            std::to_string(static_cast<int>(grpc::StatusCode::DeadlineExceeded)));
  EXPECT_EQ(cluster_stats().deadline_exceeded, 1u);
  auto at_backend = backend(kA).requests();
  ASSERT_EQ(at_backend.size(), 1u);
  // No time passed before the attempt started, so the backend got the whole budget...
  EXPECT_EQ(grpc::parse_timeout(at_backend[0]->header("grpc-timeout")), Duration(250ms));
  // ...and was told to stop at the same instant the client got its answer.
  ASSERT_TRUE(at_backend[0]->closed.has_value());
  EXPECT_EQ(*at_backend[0]->closed, t0 + 250ms);
  EXPECT_EQ(at_backend[0]->close_code, kCancel);
}

TEST_F(SimulatedTimeTest, AnswerJustBeforeTheDeadlineGetsThrough) {
  start({kA});
  backend(kA);
  auto client = connect_client();
  const TimePoint t0 = clock_.now();
  const StreamLog& reply =
      call_and_wait(*client, {{"grpc-timeout", "250m"}, {"x-delay-ms", "249"}});
  EXPECT_EQ(since(t0), 249ms);
  EXPECT_EQ(reply.grpc_status(), "0");
  EXPECT_EQ(cluster_stats().deadline_exceeded, 0u);
}

TEST_F(SimulatedTimeTest, RouteMaxTimeoutBoundsACallWithoutDeadline) {
  route_.max_timeout = config::Millis(1500);
  start({kA});
  backend(kA).behaviour.hang = true;
  auto client = connect_client();
  const TimePoint t0 = clock_.now();
  const StreamLog& reply = call_and_wait(*client);
  EXPECT_EQ(since(t0), 1500ms);
  EXPECT_EQ(reply.grpc_status(),
            std::to_string(static_cast<int>(grpc::StatusCode::DeadlineExceeded)));
}

// ---- retries -----------------------------------------------------------------------------------

TEST_F(SimulatedTimeTest, RetriesWaitAJitteredExponentialBackoff) {
  route_.retry.max_attempts = 3;
  route_.retry.retry_on = {14};
  route_.retry.backoff_base = config::Millis(100);
  route_.retry.backoff_max = config::Millis(1000);
  route_.retry.budget_min_per_second = 1000;   // the budget is not what this test is about
  cluster_.outlier_detection.enabled = false;  // nor is ejecting the only endpoint
  start({kA});
  backend(kA).behaviour.status = 14;
  auto client = connect_client();

  std::vector<Duration> first_backoffs;
  for (int call = 0; call < 40; ++call) {
    const size_t before = backend(kA).requests().size();
    const StreamLog& reply = call_and_wait(*client);
    EXPECT_EQ(reply.grpc_status(), kUnavailable);
    auto reqs = backend(kA).requests();
    ASSERT_EQ(reqs.size(), before + 3) << "call " << call;
    const StreamLog* a[3] = {reqs[before], reqs[before + 1], reqs[before + 2]};
    EXPECT_EQ(a[0]->header("grpc-previous-rpc-attempts"), "");
    EXPECT_EQ(a[1]->header("grpc-previous-rpc-attempts"), "1");
    EXPECT_EQ(a[2]->header("grpc-previous-rpc-attempts"), "2");
    // Full jitter: uniform(0, base) before the first retry, uniform(0, 2 x base) before the
    // second. The backend answers at once, so the gaps between attempts are the backoffs.
    const Duration d1 = a[1]->opened - a[0]->opened, d2 = a[2]->opened - a[1]->opened;
    EXPECT_GE(d1, Duration::zero());
    EXPECT_LE(d1, 100ms);
    EXPECT_GE(d2, Duration::zero());
    EXPECT_LE(d2, 200ms);
    // The last failure is relayed the moment it arrives.
    EXPECT_EQ(*reply.closed, a[2]->opened);
    first_backoffs.push_back(d1);
  }
  Duration sum{};
  for (Duration d : first_backoffs) sum += d;
  const Duration mean = sum / static_cast<int64_t>(first_backoffs.size());
  // uniform(0, 100 ms) has mean 50 ms; the mean of 40 draws is within 35..65 ms with
  // overwhelming probability (and the seed is fixed).
  EXPECT_GT(mean, 35ms);
  EXPECT_LT(mean, 65ms);
  EXPECT_EQ(cluster_stats().retries_status, 80u);
}

TEST_F(SimulatedTimeTest, RetryBudgetIsSpentThenRefillsWhenItsWindowPasses) {
  route_.retry.max_attempts = 2;
  route_.retry.retry_on = {14};
  route_.retry.backoff_base = config::Millis(1);
  route_.retry.backoff_max = config::Millis(1);
  route_.retry.budget_ratio = 0;           // calls add nothing to the budget...
  route_.retry.budget_min_per_second = 1;  // ...which is 10 retries per 10 s window
  cluster_.outlier_detection.enabled = false;
  start({kA});
  backend(kA).behaviour.status = 14;
  auto client = connect_client();
  const TimePoint t0 = clock_.now();  // on a whole second: the budget counts by second

  for (int i = 0; i < 15; ++i) call_and_wait(*client);
  EXPECT_EQ(backend(kA).requests().size(), 25u) << "15 calls, 10 of them retried";
  EXPECT_EQ(cluster_stats().retry_budget_exhausted, 5u);

  clock_.advance((t0 + 10s - 1ms) - clock_.now());
  call_and_wait(*client);
  EXPECT_EQ(backend(kA).requests().size(), 26u) << "the window still holds the 10 retries";
  EXPECT_EQ(cluster_stats().retry_budget_exhausted, 6u);

  clock_.advance(1ms);  // t0 + 10 s: the retries of the first second leave the window
  call_and_wait(*client);
  EXPECT_EQ(backend(kA).requests().size(), 28u) << "retried again";
  EXPECT_EQ(cluster_stats().retry_budget_exhausted, 6u);
}

// ---- outlier ejection --------------------------------------------------------------------------

TEST_F(SimulatedTimeTest, FailingEndpointIsEjectedForBaseTimeThenReturnsThenForTwiceAsLong) {
  cluster_.outlier_detection.consecutive_failures = 3;
  cluster_.outlier_detection.base_ejection_time = config::Millis(30000);
  cluster_.outlier_detection.max_ejection_percent = 50;
  start({kA, kB});
  backend(kA).behaviour.status = 14;  // a failure status for outlier detection
  backend(kB);
  auto client = connect_client();

  auto fail_until_ejected = [&] {
    for (int i = 0; i < 20 && !ejected(kA); ++i) call_and_wait(*client);
    return ejected(kA);
  };
  ASSERT_TRUE(fail_until_ejected());
  EXPECT_EQ(backend(kA).requests().size(), 3u) << "ejected after 3 failures in a row";
  TimePoint ejected_at = clock_.now();

  // While ejected, calls go to B only.
  clock_.advance(30s - 1ms);
  EXPECT_TRUE(ejected(kA));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(call_and_wait(*client).grpc_status(), "0");
  EXPECT_EQ(backend(kA).requests().size(), 3u);

  ASSERT_TRUE(clock_.advance_until([&] { return !ejected(kA); }, 1h));
  EXPECT_EQ(since(ejected_at), 30s);
  size_t a_before = backend(kA).requests().size();
  for (int i = 0; i < 2; ++i) call_and_wait(*client);
  EXPECT_EQ(backend(kA).requests().size(), a_before + 1) << "A is back in the rotation";

  // Still failing: the second ejection lasts base x 2.
  ASSERT_TRUE(fail_until_ejected());
  ejected_at = clock_.now();
  ASSERT_TRUE(clock_.advance_until([&] { return !ejected(kA); }, 1h));
  EXPECT_EQ(since(ejected_at), 60s);
  EXPECT_EQ(registry_->ejections_total(), 2u);
}

// ---- connecting to backends --------------------------------------------------------------------

TEST_F(SimulatedTimeTest, UnansweredConnectFailsAtConnectTimeout) {
  cluster_.connect_timeout = config::Millis(2000);
  start({kA});
  network_.black_hole(kA);
  auto client = connect_client();
  const TimePoint t0 = clock_.now();
  const StreamLog& reply = call_and_wait(*client);
  EXPECT_EQ(since(t0), 2s);
  EXPECT_EQ(reply.grpc_status(), kUnavailable);
}

TEST_F(SimulatedTimeTest, RefusedEndpointIsProbedWithJitteredExponentialBackoff) {
  cluster_.reconnect_backoff_base = config::Millis(100);
  cluster_.reconnect_backoff_max = config::Millis(1000);
  start({kA});  // no backend at kA: every connect is refused
  auto client = connect_client();
  EXPECT_EQ(call_and_wait(*client).grpc_status(), kUnavailable);
  clock_.advance(10s);

  const auto& c = network_.connects;
  ASSERT_GE(c.size(), 8u);
  Duration nominal = 100ms;
  for (size_t i = 1; i < c.size(); ++i) {
    const Duration gap = c[i].second - c[i - 1].second;
    // +-20% around base x 2^(n-1), capped at the maximum.
    EXPECT_GE(gap, nominal * 8 / 10) << "probe " << i;
    EXPECT_LE(gap, nominal * 12 / 10) << "probe " << i;
    nominal = std::min<Duration>(nominal * 2, 1000ms);
  }
}

// ---- client connections ------------------------------------------------------------------------

TEST_F(SimulatedTimeTest, ClientWithoutPrefaceIsClosedAtHeaderTimeout) {
  listener_cfg_.header_timeout = config::Millis(5000);
  start({kA});
  auto raw = connect_raw();
  const TimePoint t0 = clock_.now();
  ASSERT_TRUE(clock_.advance_until([&] { return raw->peer_gone(); }, 1min));
  EXPECT_EQ(since(t0), 5s);
  EXPECT_EQ(ctx_->stats.downstream_header_timeouts, 1u);
}

TEST_F(SimulatedTimeTest, UnfinishedHeaderBlockGetsGoawayAtHeaderTimeout) {
  listener_cfg_.header_timeout = config::Millis(5000);
  start({kA});
  auto raw = connect_raw();
  clock_.advance(1s);
  // Preface, empty SETTINGS, then HEADERS (":method: POST", HPACK index 3) for stream 1
  // without END_HEADERS: the CONTINUATION that must follow never comes.
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  const uint8_t frames[] = {0, 0, 0, 0x4, 0, 0, 0, 0, 0,         // SETTINGS
                            0, 0, 1, 0x1, 0, 0, 0, 0, 1, 0x83};  // HEADERS
  std::string bytes = preface + std::string(reinterpret_cast<const char*>(frames), sizeof frames);
  ASSERT_EQ(raw->write(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()).bytes,
            bytes.size());
  clock_.advance(2s);
  const TimePoint headers_at = clock_.now() - 2s;
  EXPECT_FALSE(raw->peer_gone());
  ASSERT_TRUE(clock_.advance_until([&] { return raw->peer_gone(); }, 1min));
  EXPECT_EQ(clock_.now() - headers_at, 5s) << "header_timeout counts from the HEADERS frame";
  EXPECT_EQ(ctx_->stats.downstream_header_timeouts, 1u);

  // What the proxy sent: its SETTINGS, maybe a SETTINGS ACK, then GOAWAY(ENHANCE_YOUR_CALM).
  const std::string in = read_all(*raw);
  uint32_t goaway_code = UINT32_MAX;
  for (size_t at = 0; at + 9 <= in.size();) {
    auto u8 = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(in[i])); };
    const size_t len = (u8(at) << 16) | (u8(at + 1) << 8) | u8(at + 2);
    if (u8(at + 3) == 0x7 && len >= 8)
      goaway_code = (u8(at + 13) << 24) | (u8(at + 14) << 16) | (u8(at + 15) << 8) | u8(at + 16);
    at += 9 + len;
  }
  EXPECT_EQ(goaway_code, static_cast<uint32_t>(http2::H2Error::EnhanceYourCalm));
}

TEST_F(SimulatedTimeTest, IdleClientConnectionIsDrainedAtIdleTimeout) {
  listener_cfg_.idle_timeout = config::Millis(60000);
  listener_cfg_.header_timeout = config::Millis(5000);
  start({kA});
  backend(kA);
  auto client = connect_client();
  const TimePoint t0 = clock_.now();
  EXPECT_EQ(call_and_wait(*client).grpc_status(), "0");

  // A call 30 s in restarts the idle period: the GOAWAY comes 60 s after it ended.
  clock_.advance(30s);
  EXPECT_EQ(call_and_wait(*client).grpc_status(), "0");
  ASSERT_TRUE(clock_.advance_until([&] { return client->goaway_at.has_value(); }, 10min));
  EXPECT_EQ(*client->goaway_at, t0 + 90s);
  // With no call left the connection ends: the client may leave at once (ours does, as
  // nghttp2 clients do), else the proxy closes after its final GOAWAY 500 ms later.
  ASSERT_TRUE(clock_.advance_until([&] { return downstreams_[0]->closed(); }, 10min));
  EXPECT_LE(since(t0), 90s + 500ms);
  EXPECT_EQ(ctx_->stats.downstream_idle_closed, 1u);
  EXPECT_EQ(ctx_->stats.downstream_header_timeouts, 0u) << "a timely preface is not timed out";
}

// ---- keepalive ---------------------------------------------------------------------------------

uint64_t pings_at(GrpcBackend& b) {
  uint64_t n = 0;
  for (const auto& c : b.conns) n += c->session().pings_received();
  return n;
}

TEST_F(SimulatedTimeTest, StoppedBackendIsDetectedByKeepaliveAndItsCallFails) {
  cluster_.keepalive = config::Keepalive{config::Millis(1000), config::Millis(500)};
  start({kA});
  backend(kA).behaviour.hang = true;
  auto client = connect_client();
  const TimePoint t0 = clock_.now();
  const int32_t id = client->call();
  clock_.run_ready();
  ASSERT_EQ(backend(kA).requests().size(), 1u);
  backend(kA).conns[0]->stall(true);  // SIGSTOP: the TCP connection stays, nothing answers
  ASSERT_TRUE(clock_.advance_until([&] { return client->done(id); }, 60s));
  // One second of silence, a PING, half a second without its ACK.
  EXPECT_EQ(since(t0), 1500ms);
  const StreamLog& reply = client->streams[id];
  EXPECT_EQ(reply.grpc_status(), kUnavailable);
  const std::string message = find_header(reply.headers, "grpc-message");  // trailers-only
  EXPECT_NE(message.find("keepalive"), std::string::npos) << message;
}

TEST_F(SimulatedTimeTest, KeepaliveNeverPingsAnIdleBackendConnection) {
  cluster_.keepalive = config::Keepalive{config::Millis(1000), config::Millis(500)};
  cluster_.idle_timeout = config::Millis(0);
  start({kA});
  backend(kA);
  auto client = connect_client();
  EXPECT_EQ(call_and_wait(*client).grpc_status(), "0");
  clock_.advance(10min);
  EXPECT_EQ(pings_at(backend(kA)), 0u) << "gRPC servers count pings without calls as abuse";
  ASSERT_EQ(backend(kA).conns.size(), 1u);
  EXPECT_FALSE(backend(kA).conns[0]->closed_at.has_value());
}

TEST_F(SimulatedTimeTest, KeepaliveSendsTwoPingsWithoutDataThenOnePerFiveMinutes) {
  cluster_.keepalive = config::Keepalive{config::Millis(1000), config::Millis(500)};
  start({kA});
  backend(kA).behaviour.hang = true;  // alive (answers PINGs) but silent: a long call
  auto client = connect_client();
  const TimePoint t0 = clock_.now();
  const int32_t id = client->call();
  clock_.advance(4min);
  // A gRPC server closes a client that sends a third PING without data in between.
  EXPECT_EQ(pings_at(backend(kA)), 2u);
  ASSERT_TRUE(clock_.advance_until([&] { return pings_at(backend(kA)) == 3; }, 10min));
  EXPECT_EQ(since(t0), 2s + 5min) << "the third comes five minutes after the second";
  EXPECT_FALSE(client->done(id)) << "a backend that answers its PINGs keeps its calls";
}

TEST_F(SimulatedTimeTest, VanishedClientIsClosedByDownstreamKeepalive) {
  listener_cfg_.keepalive = config::Keepalive{config::Millis(2000), config::Millis(1000)};
  start({kA});
  backend(kA);
  auto client = connect_client();
  const TimePoint t0 = clock_.now();
  EXPECT_EQ(call_and_wait(*client).grpc_status(), "0");
  clock_.advance(10s);
  EXPECT_FALSE(downstreams_[0]->closed()) << "a client that answers PINGs stays connected";
  EXPECT_GE(client->session().pings_received(), 4u);
  const TimePoint gone = clock_.now();
  client->stall(true);  // the client's host vanished without a FIN
  ASSERT_TRUE(clock_.advance_until([&] { return downstreams_[0]->closed(); }, 60s));
  // The last PING was answered at most 2 s before the client vanished; the next one goes out
  // 2 s after that answer and goes unanswered for 1 s.
  EXPECT_LE(since(gone), 3s);
  EXPECT_GT(since(gone), 1s);
  (void)t0;
}

// ---- call metrics (MetricsObserver) -----------------------------------------------------------
// Durations on simulated time are exact: a backend answering after x-delay-ms makes a call and
// its attempt last exactly that long, so each lands in a known bucket of the histograms.

TEST_F(SimulatedTimeTest, CallsWithKnownDelaysLandInTheirBucketsExactly) {
  start({kA});
  backend(kA);
  auto client = connect_client();
  for (const char* delay : {"25", "25", "26", "250"})
    EXPECT_EQ(call_and_wait(*client, {{"x-delay-ms", delay}}).grpc_status(), "0");

  const ListenerStats& l = ctx_->stats.listeners["test"];
  const EndpointStats& e = cluster_stats().endpoints[kA];
  const Histogram* all[] = {&cluster_stats().duration, &cluster_stats().upstream_duration,
                            &e.duration, &e.upstream_duration, &l.duration};
  for (const Histogram* h : all) {
    EXPECT_EQ(h->count(), 4u);
    EXPECT_EQ(h->sum(), 326000u) << "microseconds";
    EXPECT_EQ(h->count_at_most(20000), 0u);
    EXPECT_EQ(h->count_at_most(25000), 2u) << "25 ms is the bucket's upper bound: inside";
    EXPECT_EQ(h->count_at_most(32000), 3u);
    EXPECT_EQ(h->count_at_most(200000), 3u);
    EXPECT_EQ(h->count_at_most(250000), 4u);
  }
  EXPECT_EQ(cluster_stats().attempts[0], 4u);
  EXPECT_EQ(l.calls_total, 4u);
  EXPECT_EQ(l.by_status[0], 4u);
}

TEST_F(SimulatedTimeTest, RetriedCallReportsTwoAttemptsAndEachAttemptsUpstreamDuration) {
  route_.retry.max_attempts = 2;
  route_.retry.retry_on = {14};
  route_.retry.backoff_base = config::Millis(1);
  route_.retry.backoff_max = config::Millis(1);
  route_.retry.budget_min_per_second = 1000;
  cluster_.outlier_detection.enabled = false;
  start({kA, kB});
  backend(kA).behaviour.status = 14;  // fails after 10 ms
  backend(kA).behaviour.delay = 10ms;
  backend(kB).behaviour.delay = 40ms;  // answers after 40 ms
  auto client = connect_client();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(call_and_wait(*client).grpc_status(), "0");

  // A call that tried A first was retried on B; one that went to B first was not.
  const uint64_t retried = backend(kA).requests().size();
  ASSERT_GE(retried, 1u);
  ASSERT_EQ(backend(kB).requests().size(), 4u);
  EXPECT_EQ(cluster_stats().attempts[0], 4 - retried);
  EXPECT_EQ(cluster_stats().attempts[1], retried);

  const EndpointStats& a = cluster_stats().endpoints[kA];
  const EndpointStats& b = cluster_stats().endpoints[kB];
  EXPECT_EQ(a.upstream_duration.count(), retried);
  EXPECT_EQ(a.upstream_duration.sum(), retried * 10000);
  EXPECT_EQ(b.upstream_duration.count(), 4u);
  EXPECT_EQ(b.upstream_duration.sum(), 4 * 40000u);
  EXPECT_EQ(cluster_stats().upstream_duration.count(), 4 + retried);
  EXPECT_EQ(cluster_stats().upstream_duration.count_at_most(10000), retried);
  // Calls count at the endpoint of their last attempt, with their whole duration: a retried
  // call took 10 ms, its backoff (at most 1 ms), then 40 ms.
  EXPECT_EQ(a.duration.count(), 0u);
  EXPECT_EQ(b.duration.count(), 4u);
  EXPECT_EQ(cluster_stats().duration.count_at_most(40000), 4 - retried);
  EXPECT_EQ(cluster_stats().duration.count_at_most(64000), 4u);
  EXPECT_GE(cluster_stats().duration.sum(), 4 * 40000 + retried * 10000);
  EXPECT_LE(cluster_stats().duration.sum(), 4 * 40000 + retried * 11000);
}

TEST_F(SimulatedTimeTest, CallWithoutARouteCountsOnTheListenerOnly) {
  route_.match = config::RouteMatch{"", "/other.Service/", ""};
  start({kA});
  backend(kA);
  auto client = connect_client();
  EXPECT_EQ(call_and_wait(*client).grpc_status(),
            std::to_string(static_cast<int>(grpc::StatusCode::Unimplemented)));
  const ListenerStats& l = ctx_->stats.listeners["test"];
  EXPECT_EQ(l.calls_total, 1u);
  EXPECT_EQ(l.by_status[static_cast<size_t>(grpc::StatusCode::Unimplemented)], 1u);
  EXPECT_EQ(l.duration.count(), 1u);
  EXPECT_EQ(cluster_stats().duration.count(), 0u);
  EXPECT_EQ(ctx_->stats.calls_no_route, 1u);
}

}  // namespace
}  // namespace h2mesh::proxy
