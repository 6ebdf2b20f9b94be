// Fault injection against real greeter processes under steady load from a real gRPC client:
// health checks, outlier ejection, retries and their budget, circuit breakers, connection age.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "harness.h"

namespace h2mesh_test {
namespace {

std::string endpoint_state(uint16_t admin_port, const std::string& address) {
  auto [code, body] = http_get(admin_port, "/clusters");
  std::regex re("\"address\":\"" + address + "\",\"state\":\"([a-z]+)\"");
  std::smatch m;
  return std::regex_search(body, m, re) ? std::string(m[1]) : std::string();
}

size_t failures(const std::vector<SteadyLoad::Result>& r, size_t from = 0) {
  size_t n = 0;
  for (size_t i = from; i < r.size(); ++i) n += !r[i].ok;
  return n;
}

TEST_F(ProxyTest, FrozenBackendLeavesByHealthCheckAndReturns) {
  start_backends(4);
  const std::string hc =
      "    health_check:\n      interval: 200ms\n      interval_jitter: 50ms\n"
      "      timeout: 150ms\n      unhealthy_threshold: 2\n      healthy_threshold: 2\n";
  start(simple_config(endpoints(), "round_robin", 1, hc));
  SteadyLoad load(proxy_.target(), std::chrono::milliseconds(1000));
  ASSERT_TRUE(load.wait_more(50, std::chrono::seconds(10)));

  Backend& frozen = backends_[1];
  frozen.process->send_signal(SIGSTOP);
  auto t0 = std::chrono::steady_clock::now();
  // interval × threshold bound: two checks (each ≤ interval + jitter + timeout) must fail.
  ASSERT_TRUE(eventually([&] { return endpoint_state(proxy_.admin_port, frozen.address()) == "unhealthy"; },
                         std::chrono::seconds(5)));
  auto detect = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(detect, std::chrono::milliseconds(2 * (200 + 50 + 150) + 500));

  // Out of the rotation: calls keep succeeding on the others. (The one call that may already be
  // waiting on the frozen backend is let through first.)
  ASSERT_TRUE(load.wait_more(1, std::chrono::seconds(5)));
  size_t mark = load.count();
  ASSERT_TRUE(load.wait_more(100, std::chrono::seconds(20)));
  auto r = load.results();
  EXPECT_EQ(failures(r, mark), 0u);
  for (size_t i = mark; i < r.size(); ++i) EXPECT_NE(r[i].backend, frozen.id);

  frozen.process->send_signal(SIGCONT);
  EXPECT_TRUE(eventually([&] { return endpoint_state(proxy_.admin_port, frozen.address()) == "available"; },
                         std::chrono::seconds(5)));
  EXPECT_TRUE(eventually(
      [&] {
        auto all = load.results();
        return !all.empty() && all.back().backend == frozen.id;
      },
      std::chrono::seconds(5)))
      << "the thawed backend gets calls again";
  load.stop();
  r = load.results();
  // Only calls already sent to the frozen backend before it was taken out may fail.
  RecordProperty("calls", static_cast<int>(r.size()));
  RecordProperty("failed", static_cast<int>(failures(r)));
  std::printf("SIGSTOP: %zu of %zu calls failed\n", failures(r), r.size());
  for (const auto& x : r) {
    if (!x.ok) {
      EXPECT_EQ(x.code, grpc::StatusCode::DEADLINE_EXCEEDED) << x.message;
    }
  }
  EXPECT_LE(failures(r), 3u);
}

TEST_F(ProxyTest, KilledBackendRestartedOnSamePortFailsNoRetryableCall) {
  start_backends(3);
  // Refused connects also count for outlier detection: while the backend is down it may be
  // ejected, so the ejection is kept short enough for the rejoin to be observed here.
  start(simple_config(endpoints(), "round_robin", 1,
                      "    reconnect_backoff: { base: 50ms, max: 200ms }\n"
                      "    outlier_detection: { base_ejection_time: 200ms, max_ejection_time: 1s }\n"));
  SteadyLoad load(proxy_.target(), std::chrono::milliseconds(2000));
  ASSERT_TRUE(load.wait_more(50, std::chrono::seconds(10)));
  Backend& victim = backends_[0];
  uint16_t port = victim.port;
  victim.process->send_signal(SIGKILL);
  ASSERT_TRUE(victim.process->wait(std::chrono::seconds(10)).has_value());
  ASSERT_TRUE(load.wait_more(200, std::chrono::seconds(20)));
  victim = start_backend(dir_, "greeter-1-again", port);
  ASSERT_EQ(victim.port, port);
  EXPECT_TRUE(eventually(
      [&] {
        auto all = load.results();
        return !all.empty() && all.back().backend == "greeter-1-again";
      },
      std::chrono::seconds(10)))
      << "the restarted backend rejoins";
  load.stop();
  auto r = load.results();
  std::printf("SIGKILL + restart: %zu of %zu calls failed\n", failures(r), r.size());
  // A call can only fail if it was on the backend's connection when it died; a refused connect
  // is retried on another endpoint.
  for (const auto& x : r) {
    if (x.ok) continue;
    EXPECT_EQ(x.message.find("connect to "), std::string::npos) << x.message;
    EXPECT_EQ(x.message.find("last connect attempt"), std::string::npos) << x.message;
  }
  EXPECT_LE(failures(r), 1u);
  EXPECT_GT(metric(proxy_.admin_port, "h2mesh_cluster_retries_total{cluster=\"greeter\",reason=\"connect_failure\"}"), 0u);
}

TEST_F(ProxyTest, BackendAnsweringUnavailableIsEjectedAndReturns) {
  start_backends(3);
  Backend& bad = backends_[2];
  uint16_t port = bad.port;
  bad.process->send_signal(SIGKILL);
  ASSERT_TRUE(bad.process->wait(std::chrono::seconds(10)).has_value());
  bad = start_backend(dir_, "bad", port, {"--fail-code", "14"});
  const std::string od =
      "    outlier_detection:\n      consecutive_failures: 3\n      base_ejection_time: 1s\n"
      "      max_ejection_percent: 50\n";
  start(simple_config(endpoints(), "round_robin", 1, od));
  SteadyLoad load(proxy_.target(), std::chrono::milliseconds(2000));
  ASSERT_TRUE(eventually([&] { return endpoint_state(proxy_.admin_port, bad.address()) == "ejected"; },
                         std::chrono::seconds(10)));
  // The admin page shows the main thread's decision; the call in flight then (the load makes one
  // at a time) may have gone to the bad backend before the worker got the new snapshot.
  ASSERT_TRUE(load.wait_more(2, std::chrono::seconds(10)));
  size_t mark = load.count();
  ASSERT_TRUE(load.wait_more(50, std::chrono::seconds(10)));
  auto r = load.results();
  EXPECT_EQ(failures(r, mark), 0u) << "traffic moved to the others";
  // It answers OK again: once the ejection time is over it is back in the rotation.
  bad.process->send_signal(SIGKILL);
  ASSERT_TRUE(bad.process->wait(std::chrono::seconds(10)).has_value());
  bad = start_backend(dir_, "healed", port);
  EXPECT_TRUE(eventually(
      [&] {
        auto all = load.results();
        return !all.empty() && all.back().backend == "healed";
      },
      std::chrono::seconds(10)));
  load.stop();
  r = load.results();
  std::printf("UNAVAILABLE backend: %zu of %zu calls failed before ejection\n", failures(r), r.size());
  EXPECT_LE(failures(r), 4u);
  EXPECT_GE(metric(proxy_.admin_port, "h2mesh_endpoint_ejections_total{cluster=\"greeter\",endpoint=\"" +
                                          bad.address() + "\"}"),
            1u);
}

TEST_F(ProxyTest, RouteMaxTimeoutEndsCallsWithoutClientDeadline) {
  start_backends(1);
  std::string yaml = simple_config(endpoints(), "round_robin");
  yaml = std::regex_replace(yaml, std::regex("      - cluster: greeter\n"),
                            "      - cluster: greeter\n        max_timeout: 300ms\n");
  start(yaml);
  auto s = stub();
  grpc::ClientContext ctx;  // no deadline at all
  ctx.AddMetadata("x-delay-ms", "5000");
  helloworld::HelloRequest req;
  helloworld::HelloReply reply;
  auto t0 = std::chrono::steady_clock::now();
  auto st = s->SayHello(&ctx, req, &reply);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::milliseconds(2000));
  EXPECT_TRUE(eventually([&] { return backend_stats(backends_[0]).cancelled() == 1; },
                         std::chrono::seconds(5)))
      << "the upstream stream was reset";
}

TEST_F(ProxyTest, RetryBudgetBoundsAttemptsWhenEveryBackendFails) {
  for (int i = 1; i <= 2; ++i)
    backends_.push_back(start_backend(dir_, "down-" + std::to_string(i), 0, {"--fail-code", "14"}));
  std::string yaml = simple_config(endpoints(), "round_robin", 1,
                                   "    outlier_detection: { enabled: false }\n");
  yaml = std::regex_replace(
      yaml, std::regex("      - cluster: greeter\n"),
      "      - cluster: greeter\n        retry:\n          max_attempts: 5\n"
      "          retry_on: [unavailable]\n          backoff: { base: 1ms, max: 2ms }\n"
      "          budget: { ratio: 0.2, min_per_second: 1 }\n");
  start(yaml);
  auto s = stub();
  const int kCalls = 100;
  for (int i = 0; i < kCalls; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    helloworld::HelloRequest req;
    helloworld::HelloReply reply;
    EXPECT_EQ(s->SayHello(&ctx, req, &reply).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  uint64_t attempts = total_calls(backends_);
  // Without a budget: 5 attempts per call. With it: calls + min_per_second × 10 s + 20%.
  EXPECT_GT(attempts, static_cast<uint64_t>(kCalls));
  EXPECT_LE(attempts, static_cast<uint64_t>(kCalls + 10 + kCalls / 5));
  EXPECT_GT(metric(proxy_.admin_port, "h2mesh_cluster_retry_budget_exhausted_total{cluster=\"greeter\"}"), 0u);
}

TEST_F(ProxyTest, RetryOnStatusMovesTheCallToAHealthyBackend) {
  backends_.push_back(start_backend(dir_, "down", 0, {"--fail-code", "14"}));
  backends_.push_back(start_backend(dir_, "up"));
  std::string yaml = simple_config(endpoints(), "round_robin", 1,
                                   "    outlier_detection: { enabled: false }\n");
  yaml = std::regex_replace(yaml, std::regex("      - cluster: greeter\n"),
                            "      - cluster: greeter\n        retry:\n"
                            "          retry_on: [unavailable]\n");
  start(yaml);
  auto s = stub();
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext ctx;
    helloworld::HelloRequest req;
    helloworld::HelloReply reply;
    auto st = s->SayHello(&ctx, req, &reply);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(backend_of(reply.message()), "up");
  }
  EXPECT_GE(metric(proxy_.admin_port, "h2mesh_cluster_retries_total{cluster=\"greeter\",reason=\"status\"}"), 10u);
}

// Two of three backends answer UNAVAILABLE: with max_attempts 3 every call ends on the third,
// because a retry avoids every endpoint the call tried, not only the last one. (The random
// policy would send half of the third attempts back to the first failed backend otherwise.)
TEST_F(ProxyTest, RetriesAvoidEveryEndpointTheCallTried) {
  for (int i = 1; i <= 2; ++i)
    backends_.push_back(start_backend(dir_, "down-" + std::to_string(i), 0, {"--fail-code", "14"}));
  backends_.push_back(start_backend(dir_, "up"));
  std::string yaml = simple_config(endpoints(), "random", 1,
                                   "    outlier_detection: { enabled: false }\n");
  yaml = std::regex_replace(
      yaml, std::regex("      - cluster: greeter\n"),
      "      - cluster: greeter\n        retry:\n          max_attempts: 3\n"
      "          retry_on: [unavailable]\n          backoff: { base: 1ms, max: 2ms }\n"
      "          budget: { ratio: 1.0, min_per_second: 1000 }\n");
  start(yaml);
  auto s = stub();
  const int kCalls = 60;
  for (int i = 0; i < kCalls; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    helloworld::HelloRequest req;
    helloworld::HelloReply reply;
    auto st = s->SayHello(&ctx, req, &reply);
    ASSERT_TRUE(st.ok()) << "call " << i << ": " << st.error_message();
    EXPECT_EQ(backend_of(reply.message()), "up");
  }
  // Each failing backend saw each call at most once, every failed attempt was retried, and the
  // healthy one took each call exactly once.
  const uint64_t down1 = backend_stats(backends_[0]).calls();
  const uint64_t down2 = backend_stats(backends_[1]).calls();
  EXPECT_GT(down1, 0u);
  EXPECT_GT(down2, 0u);
  EXPECT_LE(down1, static_cast<uint64_t>(kCalls));
  EXPECT_LE(down2, static_cast<uint64_t>(kCalls));
  EXPECT_TRUE(eventually(
      [&] {
        return metric(proxy_.admin_port,
                      "h2mesh_cluster_retries_total{cluster=\"greeter\",reason=\"status\"}") ==
               down1 + down2;
      },
      std::chrono::seconds(5)));
  EXPECT_EQ(backend_stats(backends_[2]).calls(), static_cast<uint64_t>(kCalls));
}

TEST_F(ProxyTest, CircuitBreakerOverflowAnswersAtOnce) {
  start_backends(1);
  start(simple_config(endpoints(), "round_robin", 1, "    circuit_breakers: { max_calls: 2 }\n"));
  auto s = stub();
  SlowCalls slow(*s, 2, 2000, 20000);
  ASSERT_TRUE(eventually([&] { return backend_stats(backends_[0]).calls() == 2; },
                         std::chrono::seconds(10)));
  grpc::ClientContext ctx;
  helloworld::HelloRequest req;
  helloworld::HelloReply reply;
  auto t0 = std::chrono::steady_clock::now();
  auto st = s->SayHello(&ctx, req, &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("circuit breaker"), std::string::npos) << st.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  EXPECT_EQ(metric(proxy_.admin_port, "h2mesh_cluster_circuit_breaker_overflow_total{cluster=\"greeter\"}"), 1u);
  ASSERT_TRUE(slow.wait(std::chrono::seconds(20)));
  EXPECT_TRUE(slow.status(0).ok());
  EXPECT_TRUE(slow.status(1).ok());
}

TEST_F(ProxyTest, MaxConnectionAgeSendsGoawayAndCallsInFlightFinish) {
  start_backends(2);
  std::string yaml = simple_config(endpoints(), "round_robin");
  yaml = std::regex_replace(yaml, std::regex("    address: \"127.0.0.1:0\"\n    routes:"),
                            "    address: \"127.0.0.1:0\"\n    max_connection_age: 1s\n"
                            "    max_connection_age_grace: 10s\n    routes:");
  start(yaml);
  auto s = stub();
  SlowCalls slow(*s, 2, 2000, 20000);  // running when the age is reached
  ASSERT_TRUE(slow.wait(std::chrono::seconds(20)));
  EXPECT_TRUE(slow.status(0).ok()) << slow.status(0).error_message();
  EXPECT_TRUE(slow.status(1).ok()) << slow.status(1).error_message();
  EXPECT_GE(metric(proxy_.admin_port, "h2mesh_downstream_max_age_goaways_total"), 1u);
  // The client reconnects by itself and keeps working.
  for (int i = 0; i < 5; ++i) {
    grpc::ClientContext ctx;
    helloworld::HelloRequest req;
    helloworld::HelloReply reply;
    EXPECT_TRUE(s->SayHello(&ctx, req, &reply).ok());
  }
  EXPECT_GE(metric(proxy_.admin_port, "h2mesh_downstream_connections_total"), 2u);
}

}  // namespace
}  // namespace h2mesh_test
