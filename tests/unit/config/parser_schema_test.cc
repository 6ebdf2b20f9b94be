#include <gtest/gtest.h>

#include <string>

#include "config/parser.h"
#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

// ---- Unknown and duplicate keys ---------------------------------------------------------------

TEST(ConfigParser, UnknownTopLevelKeySuggestsClosestKey) {
  auto result = parse_with_base(R"(
worker: 2
)");
  ASSERT_TRUE(has_one_error(result, 1, "unknown key 'worker'", "did you mean 'workers'?"));
  EXPECT_EQ(result.errors[0].column, 1);
}

TEST(ConfigParser, UnknownKeyInClusterSuggestsClosestKey) {
  auto result = parse_cluster(R"(
    lb_polcy: random
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(
      has_one_error(result, 8, "clusters[0]: unknown key 'lb_polcy'", "did you mean 'lb_policy'?"));
  EXPECT_EQ(result.errors[0].column, 5);
}

TEST(ConfigParser, TransposedLettersStillGetASuggestion) {
  auto result = parse_with_base(R"(
wokrers: 2
)");
  ASSERT_TRUE(has_one_error(result, 1, "unknown key 'wokrers'", "did you mean 'workers'?"));
}

TEST(ConfigParser, UnknownKeyFarFromEveryKeyListsKnownKeys) {
  auto result = parse_with_base(R"(
admin:
  colour: blue
)");
  ASSERT_TRUE(
      has_one_error(result, 2, "admin: unknown key 'colour'", "known keys here: enabled, address, endpoint_stats_retention"));
}

TEST(ConfigParser, UnknownKeyInListenerIsReported) {
  auto result = parse(R"(
listeners:
  - name: public
    adress: "127.0.0.1:0"
    address: "127.0.0.1:0"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(
      has_one_error(result, 3, "listeners[0]: unknown key 'adress'", "did you mean 'address'?"));
}

TEST(ConfigParser, UnknownKeyInRouteAndMatchAreBothReported) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - match:
          prefx: "/a/"
        clusterr: c
        cluster: c
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_EQ(result.errors.size(), 3u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 6);
  EXPECT_NE(result.errors[0].message.find("match: unknown key 'prefx'"), std::string::npos);
  EXPECT_EQ(result.errors[0].hint, "did you mean 'prefix'?");
  // Only an unknown key was given, so the match has no condition left.
  EXPECT_EQ(result.errors[1].line, 6);
  EXPECT_NE(result.errors[1].message.find("needs 'authority', 'prefix' or 'path'"),
            std::string::npos);
  EXPECT_EQ(result.errors[2].line, 7);
  EXPECT_EQ(result.errors[2].hint, "did you mean 'cluster'?");
}

TEST(ConfigParser, UnknownKeyInBuffersBackoffAndEndpointAreReported) {
  auto result = parse(R"(
buffers:
  stream_window: 1MiB
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes: [{ cluster: c }]
clusters:
  - name: c
    reconnect_backoff: { base: 1s, maximum: 2s }
    endpoints:
      - { address: "127.0.0.1:1", wieght: 2 }
)");
  ASSERT_EQ(result.errors.size(), 3u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 2);
  EXPECT_NE(result.errors[0].message.find("unknown key 'stream_window'"), std::string::npos);
  EXPECT_EQ(result.errors[0].hint, "did you mean 'stream_window_bytes'?");
  EXPECT_EQ(result.errors[1].line, 9);
  EXPECT_NE(result.errors[1].message.find("unknown key 'maximum'"), std::string::npos);
  EXPECT_EQ(result.errors[1].hint, "did you mean 'max'?");
  EXPECT_EQ(result.errors[2].line, 11);
  EXPECT_EQ(result.errors[2].hint, "did you mean 'weight'?");
}

TEST(ConfigParser, DuplicateKeyInAMapIsAnError) {
  auto result = parse_with_base(R"(
workers: 2
log_level: info
workers: 3
)");
  ASSERT_TRUE(has_one_error(result, 3, "duplicate key 'workers'", "first set on line 1"));
}

TEST(ConfigParser, NonScalarKeyIsAnError) {
  auto result = parse_with_base(R"(
? [a, b]
: 1
)");
  ASSERT_TRUE(has_one_error(result, 1, "keys must be plain strings, got a sequence"));
}

// ---- Wrong types ------------------------------------------------------------------------------

TEST(ConfigParser, ScalarWhereMapExpectedIsAnError) {
  auto result = parse_with_base(R"(
admin: yes
)");
  ASSERT_TRUE(has_one_error(result, 1, "admin: expected a map, got 'yes'"));
}

TEST(ConfigParser, EmptyValueWhereMapExpectedPointsAtTheKey) {
  auto result = parse_with_base(R"(
buffers:

workers: 1
)");
  ASSERT_TRUE(has_one_error(result, 1, "buffers: expected a map, got null"));
}

TEST(ConfigParser, EmptySequenceItemsPointAtTheirDash) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      -
clusters:
  - name: c
    endpoints:
      - "127.0.0.1:1"
      -   # forgotten
      - ~
      - "127.0.0.1:2"
)");
  ASSERT_EQ(result.errors.size(), 3u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 5);
  EXPECT_EQ(result.errors[0].column, 7);
  EXPECT_NE(result.errors[0].message.find("routes[0]: expected a map, got null"),
            std::string::npos);
  EXPECT_EQ(result.errors[1].line, 10);
  EXPECT_EQ(result.errors[1].column, 7);
  EXPECT_NE(result.errors[1].message.find("endpoints[1]: expected an address or a map, got null"),
            std::string::npos);
  EXPECT_EQ(result.errors[2].line, 11);
  EXPECT_EQ(result.errors[2].column, 9);
}

TEST(ConfigParser, ScalarWhereSequenceExpectedIsAnError) {
  auto result = parse(R"(
listeners: public
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 1, "listeners: expected a sequence, got 'public'"));
}

TEST(ConfigParser, MapWhereSequenceExpectedIsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      cluster: c
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 5, "routes: expected a sequence, got a map"));
}

TEST(ConfigParser, MapWhereStringExpectedIsAnError) {
  auto result = parse(R"(
listeners:
  - name: { first: public }
    address: "127.0.0.1:0"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 2, "listeners[0].name: expected a string, got a map"));
}

TEST(ConfigParser, NonIntegerWhereIntegerExpectedIsAnError) {
  auto result = parse_with_base(R"(
workers: two
)");
  ASSERT_TRUE(has_one_error(result, 1, "workers: expected an integer, got 'two'", "0..256"));
}

TEST(ConfigParser, FractionalIntegerIsAnError) {
  auto result = parse_cluster(R"(
    max_pending_calls: 1.5
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "expected an integer, got '1.5'"));
}

TEST(ConfigParser, SequenceWhereIntegerExpectedIsAnError) {
  auto result = parse_with_base(R"(
workers: [1, 2]
)");
  ASSERT_TRUE(has_one_error(result, 1, "workers: expected an integer, got a sequence"));
}

TEST(ConfigParser, WorkersAboveLimitIsOutOfRange) {
  auto result = parse_with_base(R"(
workers: 257
)");
  ASSERT_TRUE(has_one_error(result, 1, "workers: 257 is out of range", "0..256"));
}

TEST(ConfigParser, NegativeWorkersIsOutOfRange) {
  auto result = parse_with_base(R"(
workers: -1
)");
  ASSERT_TRUE(has_one_error(result, 1, "-1 is out of range", "0..256"));
}

TEST(ConfigParser, IntegerOverflowIsOutOfRange) {
  auto result = parse_with_base(R"(
workers: 99999999999999999999999
)");
  ASSERT_TRUE(has_one_error(result, 1, "is out of range", "0..256"));
}

TEST(ConfigParser, ZeroMaxConcurrentStreamsIsOutOfRange) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    max_concurrent_streams: 0
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(
      has_one_error(result, 4, "max_concurrent_streams: 0 is out of range", "1..2147483647"));
}

TEST(ConfigParser, MaxConcurrentStreamsAbove31BitsIsOutOfRange) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    max_concurrent_streams: 2147483648
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 4, "out of range", "1..2147483647"));
}

TEST(ConfigParser, ClusterIntegerLimitsAreEnforced) {
  auto result = parse_cluster(R"(
    max_connections_per_endpoint: 0
    max_pending_calls: 1000001
    endpoints:
      - { address: "127.0.0.1:1", weight: 0 }
      - { address: "127.0.0.1:2", weight: 1001 }
)");
  ASSERT_EQ(result.errors.size(), 4u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 8);
  EXPECT_EQ(result.errors[0].hint, "allowed range: 1..1024");
  EXPECT_EQ(result.errors[1].line, 9);
  EXPECT_EQ(result.errors[1].hint, "allowed range: 0..1000000");
  EXPECT_EQ(result.errors[2].line, 11);
  EXPECT_NE(result.errors[2].message.find("endpoints[0].weight: 0 is out of range"),
            std::string::npos);
  EXPECT_EQ(result.errors[2].hint, "allowed range: 1..1000");
  EXPECT_EQ(result.errors[3].line, 12);
  EXPECT_EQ(result.errors[3].hint, "allowed range: 1..1000");
}

TEST(ConfigParser, MaxConnectionsAbove1024IsOutOfRange) {
  auto result = parse_cluster(R"(
    max_connections_per_endpoint: 1025
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "1025 is out of range", "1..1024"));
}

TEST(ConfigParser, BadLogLevelListsAllowedValues) {
  auto result = parse_with_base(R"(
log_level: verbose
)");
  ASSERT_TRUE(has_one_error(result, 1, "log_level: invalid value 'verbose'",
                            "expected one of: debug, info, warn, error"));
}

TEST(ConfigParser, MisspelledLogLevelSuggestsValue) {
  auto result = parse_with_base(R"(
log_level: warning
)");
  ASSERT_TRUE(has_one_error(result, 1, "invalid value 'warning'", "did you mean 'warn'?"));
}

TEST(ConfigParser, BadLbPolicyListsAllowedValues) {
  auto result = parse_cluster(R"(
    lb_policy: fastest
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "clusters[0].lb_policy: invalid value 'fastest'",
                            "expected one of: round_robin, random, least_request"));
}

TEST(ConfigParser, MisspelledLbPolicySuggestsValue) {
  auto result = parse_cluster(R"(
    lb_policy: round-robin
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(
      has_one_error(result, 8, "invalid value 'round-robin'", "did you mean 'round_robin'?"));
}

TEST(ConfigParser, BadBooleanIsAnError) {
  auto result = parse_with_base(R"(
admin:
  enabled: maybe
)");
  ASSERT_TRUE(has_one_error(result, 2, "admin.enabled: expected true or false, got 'maybe'",
                            "write true or false"));
}

// ---- Durations and sizes ----------------------------------------------------------------------

TEST(ConfigParser, DurationWithoutUnitAsksForOne) {
  auto result = parse_with_base(R"(
drain_timeout: 30
)");
  ASSERT_TRUE(
      has_one_error(result, 1, "drain_timeout: duration '30' has no unit", "write 30s or 500ms"));
}

TEST(ConfigParser, DurationWithUnknownUnitListsUnits) {
  auto result = parse_with_base(R"(
drain_timeout: 30sec
)");
  ASSERT_TRUE(has_one_error(result, 1, "unknown unit 'sec'", "the units are ms, s, m and h"));
}

TEST(ConfigParser, FractionalDurationSuggestsSmallerUnit) {
  auto result = parse_cluster(R"(
    connect_timeout: 1.5s
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "durations are whole numbers", "1500ms"));
}

TEST(ConfigParser, NegativeDurationIsAnError) {
  auto result = parse_with_base(R"(
drain_timeout: -5s
)");
  ASSERT_TRUE(has_one_error(result, 1, "invalid duration '-5s'", "cannot be negative"));
}

TEST(ConfigParser, DurationOverADayIsAnError) {
  auto result = parse_with_base(R"(
drain_timeout: 25h
)");
  ASSERT_TRUE(has_one_error(result, 1, "too long", "24h"));
}

TEST(ConfigParser, ZeroConnectTimeoutIsAnError) {
  auto result = parse_cluster(R"(
    connect_timeout: 0ms
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "connect_timeout: must be at least 1ms"));
}

TEST(ConfigParser, MapWhereDurationExpectedIsAnError) {
  auto result = parse_with_base(R"(
drain_timeout: { seconds: 3 }
)");
  ASSERT_TRUE(has_one_error(result, 1, "expected a duration such as 30s, got a map"));
}

TEST(ConfigParser, BackoffBaseAboveMaxIsAnError) {
  auto result = parse_cluster(R"(
    reconnect_backoff: { base: 10s, max: 1s }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "base (10000ms) is larger than max (1000ms)",
                            "base must be <= max"));
}

TEST(ConfigParser, BackoffBaseAboveDefaultMaxIsAnError) {
  auto result = parse_cluster(R"(
    reconnect_backoff:
      base: 6s
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 9, "base (6000ms) is larger than max (5000ms)"));
}

TEST(ConfigParser, WindowBelow64KiBIsOutOfRange) {
  auto result = parse_with_base(R"(
buffers:
  stream_window_bytes: 1KiB
)");
  ASSERT_TRUE(has_one_error(result, 2, "stream_window_bytes: size 1KiB is out of range",
                            "64KiB..2147483647 bytes"));
}

TEST(ConfigParser, WindowOf2GiBIsOutOfRange) {
  auto result = parse_with_base(R"(
buffers:
  connection_window_bytes: 2GiB
)");
  ASSERT_TRUE(has_one_error(result, 2, "connection_window_bytes: size 2GiB is out of range"));
}

TEST(ConfigParser, DecimalSizeUnitIsRejected) {
  auto result = parse_with_base(R"(
buffers:
  stream_window_bytes: 1MB
)");
  ASSERT_TRUE(has_one_error(result, 2, "unknown unit 'MB'", "KiB, MiB and GiB"));
}

TEST(ConfigParser, SizeWithoutDigitsIsAnError) {
  auto result = parse_with_base(R"(
buffers:
  stream_window_bytes: big
)");
  ASSERT_TRUE(has_one_error(result, 2, "invalid size 'big'", "64KiB"));
}

// ---- Missing required keys --------------------------------------------------------------------

TEST(ConfigParser, ListenerWithoutNameAddressAndRoutesReportsAllThree) {
  auto result = parse(R"(
listeners:
  - max_concurrent_streams: 10
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_EQ(result.errors.size(), 3u) << dump(result);
  for (const auto& error : result.errors) {
    EXPECT_EQ(error.line, 2);
    EXPECT_EQ(error.column, 5);
  }
  EXPECT_NE(result.errors[0].message.find("listeners[0]: missing required key 'name'"),
            std::string::npos);
  EXPECT_NE(result.errors[1].message.find("missing required key 'address'"), std::string::npos);
  EXPECT_NE(result.errors[2].message.find("missing required key 'routes'"), std::string::npos);
}

TEST(ConfigParser, EmptyRouteListIsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes: []
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 4, "listeners[0].routes: at least one route is required"));
}

TEST(ConfigParser, RouteWithoutClusterIsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - match: { prefix: "/a/" }
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 5, "routes[0]: missing required key 'cluster'"));
}

TEST(ConfigParser, ClusterWithoutNameIsAnErrorAndRoutesAreNotBlamed) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes: [{ cluster: c }]
clusters:
  - endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 6, "clusters[0]: missing required key 'name'"));
}

TEST(ConfigParser, ClusterWithoutEndpointsIsAnError) {
  auto result = parse_cluster(R"(
    lb_policy: random
)");
  ASSERT_TRUE(has_one_error(result, 7, "clusters[0]: missing required key 'endpoints'"));
}

TEST(ConfigParser, EmptyEndpointListIsAnError) {
  auto result = parse_cluster(R"(
    endpoints: []
)");
  ASSERT_TRUE(has_one_error(result, 8, "clusters[0].endpoints: at least one endpoint is required"));
}

TEST(ConfigParser, EndpointMapWithoutAddressIsAnError) {
  auto result = parse_cluster(R"(
    endpoints:
      - { weight: 2 }
)");
  ASSERT_TRUE(has_one_error(result, 9, "endpoints[0]: missing required key 'address'"));
}

TEST(ConfigParser, EmptyNameIsAnError) {
  auto result = parse_cluster(R"(
    endpoints: ["127.0.0.1:1"]
  - name: ""
    endpoints: ["127.0.0.1:2"]
)");
  ASSERT_TRUE(has_one_error(result, 9, "clusters[1].name: must not be empty"));
}

TEST(ConfigParser, EndpointThatIsASequenceIsAnError) {
  auto result = parse_cluster(R"(
    endpoints:
      - ["127.0.0.1", 80]
)");
  ASSERT_TRUE(has_one_error(result, 9, "endpoints[0]: expected an address or a map, got a sequence",
                            "weight"));
}

}  // namespace
}  // namespace h2mesh::config
