#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/parser.h"
#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

// ---- Valid configurations ---------------------------------------------------------------------

// Every connection, retry and health setting set to a value other than its default (boundary
// values where there is one); line numbers as visible below.
constexpr std::string_view kResilienceConfig = R"(
listeners:
  - name: grpc
    address: "127.0.0.1:0"
    max_connection_age: 10m
    max_connection_age_grace: 0s
    idle_timeout: 2m
    header_timeout: 10ms
    routes:
      - match: { prefix: "/helloworld.Greeter/" }
        cluster: greeter
        max_timeout: 20s
        retry:
          max_attempts: 10
          retry_on: [unavailable, RESOURCE_EXHAUSTED, 4, Aborted]
          backoff: { base: 10ms, max: 1s }
          budget: { ratio: 0.5, min_per_second: 100000 }
          replay_buffer_bytes: 64MiB
      - cluster: greeter
clusters:
  - name: greeter
    idle_timeout: 0s
    panic_threshold_percent: 100
    health_check:
      service: helloworld.Greeter
      interval: 2s
      interval_jitter: 0s
      timeout: 2s
      healthy_threshold: 1
      unhealthy_threshold: 100
    outlier_detection:
      enabled: false
      consecutive_failures: 1000
      failure_statuses: [internal, 2, DATA_LOSS]
      base_ejection_time: 1s
      max_ejection_time: 1s
      max_ejection_percent: 0
    circuit_breakers:
      max_calls: 10000000
      max_calls_per_endpoint: 250
    endpoints: ["127.0.0.1:50052"]
)";

TEST(ConfigParserResilience, FullConfigParsesListenerTimeouts) {
  auto result = parse(kResilienceConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Listener& listener = result.config->listeners[0];
  EXPECT_EQ(listener.max_connection_age, minutes(10));
  EXPECT_EQ(listener.max_connection_age_grace, Millis(0));
  EXPECT_EQ(listener.idle_timeout, minutes(2));
  EXPECT_EQ(listener.header_timeout, Millis(10));
}

TEST(ConfigParserResilience, FullConfigParsesRouteTimeoutAndRetryPolicy) {
  auto result = parse(kResilienceConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Route& route = result.config->listeners[0].routes[0];
  EXPECT_EQ(route.line, 9);
  EXPECT_EQ(route.max_timeout, seconds(20));
  const RetryPolicy& retry = route.retry;
  EXPECT_EQ(retry.max_attempts, 10u);
  EXPECT_EQ(retry.retry_on, (std::vector<int>{14, 8, 4, 10}));
  EXPECT_EQ(retry.backoff_base, Millis(10));
  EXPECT_EQ(retry.backoff_max, seconds(1));
  EXPECT_DOUBLE_EQ(retry.budget_ratio, 0.5);
  EXPECT_EQ(retry.budget_min_per_second, 100000u);
  EXPECT_EQ(retry.replay_buffer_bytes, 64u << 20);
}

TEST(ConfigParserResilience, RouteWithoutRetryKeepsTheDefaultPolicy) {
  auto result = parse(kResilienceConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Route& route = result.config->listeners[0].routes[1];
  EXPECT_EQ(route.max_timeout, Millis(0));
  EXPECT_EQ(route.retry.max_attempts, 3u);
  EXPECT_TRUE(route.retry.retry_on.empty());
}

TEST(ConfigParserResilience, FullConfigParsesClusterHealthSettings) {
  auto result = parse(kResilienceConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Cluster& cluster = result.config->clusters[0];
  EXPECT_EQ(cluster.idle_timeout, Millis(0));
  EXPECT_EQ(cluster.panic_threshold_percent, 100u);
  const HealthCheck& hc = cluster.health_check;
  EXPECT_TRUE(hc.enabled);
  EXPECT_EQ(hc.service, "helloworld.Greeter");
  EXPECT_EQ(hc.interval, seconds(2));
  EXPECT_EQ(hc.interval_jitter, Millis(0));
  EXPECT_EQ(hc.timeout, seconds(2));
  EXPECT_EQ(hc.healthy_threshold, 1u);
  EXPECT_EQ(hc.unhealthy_threshold, 100u);
  const OutlierDetection& od = cluster.outlier_detection;
  EXPECT_FALSE(od.enabled);
  EXPECT_EQ(od.consecutive_failures, 1000u);
  EXPECT_EQ(od.failure_statuses, (std::vector<int>{13, 2, 15}));
  EXPECT_EQ(od.base_ejection_time, seconds(1));
  EXPECT_EQ(od.max_ejection_time, seconds(1));
  EXPECT_EQ(od.max_ejection_percent, 0u);
  EXPECT_EQ(cluster.circuit_breakers.max_calls, 10000000u);
  EXPECT_EQ(cluster.circuit_breakers.max_calls_per_endpoint, 250u);
}

TEST(ConfigParserResilience, MinimalConfigGetsTheDefaults) {
  auto result = parse(kListenerAndCluster);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Listener& listener = result.config->listeners[0];
  EXPECT_EQ(listener.max_connection_age, Millis(0));
  EXPECT_EQ(listener.max_connection_age_grace, seconds(30));
  EXPECT_EQ(listener.idle_timeout, Millis(0));
  EXPECT_EQ(listener.header_timeout, seconds(10));
  const Route& route = listener.routes[0];
  EXPECT_EQ(route.max_timeout, Millis(0));
  EXPECT_EQ(route.retry.max_attempts, 3u);
  EXPECT_TRUE(route.retry.retry_on.empty());
  EXPECT_EQ(route.retry.backoff_base, Millis(25));
  EXPECT_EQ(route.retry.backoff_max, Millis(250));
  EXPECT_DOUBLE_EQ(route.retry.budget_ratio, 0.2);
  EXPECT_EQ(route.retry.budget_min_per_second, 10u);
  EXPECT_EQ(route.retry.replay_buffer_bytes, 64u * 1024);
  const Cluster& cluster = result.config->clusters[0];
  EXPECT_EQ(cluster.idle_timeout, minutes(5));
  EXPECT_EQ(cluster.panic_threshold_percent, 50u);
  EXPECT_FALSE(cluster.health_check.enabled);
  EXPECT_EQ(cluster.health_check.service, "");
  EXPECT_EQ(cluster.health_check.interval, seconds(5));
  EXPECT_EQ(cluster.health_check.interval_jitter, seconds(1));
  EXPECT_EQ(cluster.health_check.timeout, seconds(1));
  EXPECT_EQ(cluster.health_check.healthy_threshold, 2u);
  EXPECT_EQ(cluster.health_check.unhealthy_threshold, 3u);
  EXPECT_TRUE(cluster.outlier_detection.enabled);
  EXPECT_EQ(cluster.outlier_detection.consecutive_failures, 5u);
  EXPECT_EQ(cluster.outlier_detection.failure_statuses, (std::vector<int>{14, 13}));
  EXPECT_EQ(cluster.outlier_detection.base_ejection_time, seconds(30));
  EXPECT_EQ(cluster.outlier_detection.max_ejection_time, seconds(300));
  EXPECT_EQ(cluster.outlier_detection.max_ejection_percent, 50u);
  EXPECT_EQ(cluster.circuit_breakers.max_calls, 0u);
  EXPECT_EQ(cluster.circuit_breakers.max_calls_per_endpoint, 0u);
}

TEST(ConfigParserResilience, LowerRangeLimitsAreAccepted) {
  auto result = parse(R"(
listeners:
  - name: grpc
    address: "127.0.0.1:0"
    max_connection_age: 1s
    idle_timeout: 1ms
    routes:
      - cluster: greeter
        max_timeout: 1ms
        retry:
          max_attempts: 1
          retry_on: []
          backoff: { base: 1ms, max: 1ms }
          budget: { ratio: 0, min_per_second: 0 }
          replay_buffer_bytes: 0
clusters:
  - name: greeter
    idle_timeout: 1ms
    panic_threshold_percent: 0
    health_check: { interval: 10ms, interval_jitter: 24h, timeout: 1ms }
    outlier_detection:
      consecutive_failures: 1
      failure_statuses: []
      base_ejection_time: 1ms
      max_ejection_time: 24h
    circuit_breakers: { max_calls: 1, max_calls_per_endpoint: 10000000 }
    endpoints: ["127.0.0.1:50052"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const Listener& listener = result.config->listeners[0];
  EXPECT_EQ(listener.max_connection_age, seconds(1));
  EXPECT_EQ(listener.idle_timeout, Millis(1));
  const RetryPolicy& retry = listener.routes[0].retry;
  EXPECT_EQ(listener.routes[0].max_timeout, Millis(1));
  EXPECT_EQ(retry.max_attempts, 1u);
  EXPECT_TRUE(retry.retry_on.empty());
  EXPECT_EQ(retry.backoff_max, Millis(1));
  EXPECT_EQ(retry.budget_ratio, 0.0);
  EXPECT_EQ(retry.budget_min_per_second, 0u);
  EXPECT_EQ(retry.replay_buffer_bytes, 0u);
  const Cluster& cluster = result.config->clusters[0];
  EXPECT_EQ(cluster.panic_threshold_percent, 0u);
  EXPECT_EQ(cluster.health_check.interval, Millis(10));
  EXPECT_EQ(cluster.health_check.interval_jitter, std::chrono::hours(24));
  EXPECT_EQ(cluster.health_check.timeout, Millis(1));
  EXPECT_TRUE(cluster.outlier_detection.failure_statuses.empty());
  EXPECT_EQ(cluster.outlier_detection.consecutive_failures, 1u);
  EXPECT_EQ(cluster.circuit_breakers.max_calls, 1u);
  EXPECT_EQ(cluster.circuit_breakers.max_calls_per_endpoint, 10000000u);
}

// ---- Listener settings ------------------------------------------------------------------------

TEST(ConfigParserResilience, ConnectionAgeBelowOneSecondIsAnError) {
  auto result = parse_listener(R"(
    max_connection_age: 999ms
)");
  ASSERT_TRUE(has_one_error(result, 4,
                            "listeners[0].max_connection_age: must be 0 (never) or at "
                            "least 1s",
                            "5m"));
}

TEST(ConfigParserResilience, ConnectionAgeWithoutUnitIsAnError) {
  auto result = parse_listener(R"(
    max_connection_age: 300
)");
  ASSERT_TRUE(has_one_error(result, 4, "max_connection_age: duration '300' has no unit"));
}

TEST(ConfigParserResilience, NegativeGraceIsAnError) {
  auto result = parse_listener(R"(
    max_connection_age_grace: -1s
)");
  ASSERT_TRUE(has_one_error(result, 4, "max_connection_age_grace: invalid duration '-1s'",
                            "cannot be negative"));
}

TEST(ConfigParserResilience, ListenerIdleTimeoutMustBeADuration) {
  auto result = parse_listener(R"(
    idle_timeout: never
)");
  ASSERT_TRUE(has_one_error(result, 4, "listeners[0].idle_timeout: invalid duration 'never'"));
}

TEST(ConfigParserResilience, HeaderTimeoutBelowTenMillisecondsIsAnError) {
  for (const char* value : {"9ms", "0s"}) {
    SCOPED_TRACE(value);
    auto result = parse_listener("    header_timeout: " + std::string(value) + "\n");
    ASSERT_TRUE(has_one_error(result, 4, "header_timeout: must be at least 10ms"));
  }
}

TEST(ConfigParserResilience, MisspelledListenerKeySuggestsIt) {
  auto result = parse_listener(R"(
    max_conection_age: 5m
    header_timout: 1s
)");
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 4);
  EXPECT_EQ(result.errors[0].hint, "did you mean 'max_connection_age'?");
  EXPECT_EQ(result.errors[1].line, 5);
  EXPECT_EQ(result.errors[1].hint, "did you mean 'header_timeout'?");
}

// ---- Route settings ---------------------------------------------------------------------------

TEST(ConfigParserResilience, FractionalMaxTimeoutIsAnError) {
  auto result = parse_route(R"(
        max_timeout: 2.5s
)");
  ASSERT_TRUE(
      has_one_error(result, 6, "routes[0].max_timeout: invalid duration '2.5s'", "smaller unit"));
}

TEST(ConfigParserResilience, MisspelledRouteKeySuggestsIt) {
  auto result = parse_route(R"(
        max_timout: 2s
        retyr: {}
)");
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 6);
  EXPECT_EQ(result.errors[0].hint, "did you mean 'max_timeout'?");
  EXPECT_EQ(result.errors[1].line, 7);
  EXPECT_EQ(result.errors[1].hint, "did you mean 'retry'?");
}

TEST(ConfigParserResilience, DefaultRouteMayCarryRetryAndTimeout) {
  auto result = parse_route(R"(
        max_timeout: 1h
        retry: { max_attempts: 2 }
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const Route& route = result.config->listeners[0].routes[0];
  EXPECT_FALSE(route.match.has_value());
  EXPECT_EQ(route.max_timeout, std::chrono::hours(1));
  EXPECT_EQ(route.retry.max_attempts, 2u);
}

// ---- Cluster settings -------------------------------------------------------------------------

TEST(ConfigParserResilience, ClusterIdleTimeoutMustBeADuration) {
  auto result = parse_cluster(R"(
    idle_timeout: 300
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "clusters[0].idle_timeout: duration '300' has no unit"));
}

TEST(ConfigParserResilience, PanicThresholdAbove100IsOutOfRange) {
  auto result = parse_cluster(R"(
    panic_threshold_percent: 101
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "panic_threshold_percent: 101 is out of range", "0..100"));
}

TEST(ConfigParserResilience, PercentSignIsNotAnInteger) {
  auto result = parse_cluster(R"(
    panic_threshold_percent: 50%
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "expected an integer, got '50%'", "0..100"));
}

TEST(ConfigParserResilience, MisspelledClusterSectionsSuggestThem) {
  auto result = parse_cluster(R"(
    healthcheck: {}
    outlier_detections: {}
    circuit_breaker: {}
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_EQ(result.errors.size(), 3u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 8);
  EXPECT_EQ(result.errors[0].hint, "did you mean 'health_check'?");
  EXPECT_EQ(result.errors[1].line, 9);
  EXPECT_EQ(result.errors[1].hint, "did you mean 'outlier_detection'?");
  EXPECT_EQ(result.errors[2].line, 10);
  EXPECT_EQ(result.errors[2].hint, "did you mean 'circuit_breakers'?");
}

TEST(ConfigParserResilience, EveryErrorInTheNewSectionsIsReportedInFileOrder) {
  auto result = parse(R"(
listeners:
  - name: grpc
    address: "127.0.0.1:0"
    header_timeout: 1ms
    routes:
      - cluster: greeter
        retry:
          max_attempts: 0
          retry_on: [ok, unavailable]
          budget: { ratio: lots }
clusters:
  - name: greeter
    health_check: { intervl: 1s, healthy_threshold: 0 }
    outlier_detection: { max_ejection_percent: 200 }
    circuit_breakers: { max_calls: -1 }
    endpoints: ["127.0.0.1:1"]
)");
  const std::vector<std::pair<int, std::string_view>> expected = {
      {4, "listeners[0].header_timeout: must be at least 10ms"},
      {8, "retry.max_attempts: 0 is out of range"},
      {9, "retry.retry_on[0]: 'ok' is not an error status"},
      {10, "retry.budget.ratio: expected a number, got 'lots'"},
      {13, "health_check: unknown key 'intervl'"},
      {13, "health_check.healthy_threshold: 0 is out of range"},
      {14, "outlier_detection.max_ejection_percent: 200 is out of range"},
      {15, "circuit_breakers.max_calls: -1 is out of range"},
  };
  ASSERT_EQ(result.errors.size(), expected.size()) << dump(result);
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(result.errors[i].line, expected[i].first) << dump(result);
    EXPECT_NE(result.errors[i].message.find(expected[i].second), std::string::npos) << dump(result);
    EXPECT_GT(result.errors[i].column, 0);
    EXPECT_FALSE(result.errors[i].hint.empty()) << result.errors[i].to_string();
  }
  EXPECT_FALSE(result.config.has_value());
}

}  // namespace
}  // namespace h2mesh::config
