#include "config/resilience_reader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

// The only route gets "retry:" on line 6 followed by `retry_body`, whose first line is line 7
// (keys indented by 10 spaces).
ParseResult parse_retry(std::string_view retry_body) {
  std::string body(retry_body);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_route("        retry:\n" + body);
}

// `retry_on: <list>` on line 7.
ParseResult parse_retry_on(std::string_view list) {
  return parse_retry("          retry_on: " + std::string(list) + "\n");
}

std::vector<int> retry_on(std::string_view list) {
  auto result = parse_retry_on(list);
  EXPECT_TRUE(result.ok()) << list << dump(result);
  return result.ok() ? result.config->listeners[0].routes[0].retry.retry_on : std::vector<int>{};
}

const RetryPolicy& retry_of(const ParseResult& result) {
  return result.config->listeners[0].routes[0].retry;
}

// ---- Status codes -----------------------------------------------------------------------------

TEST(StatusCodes, EveryErrorStatusNameIsKnown) {
  EXPECT_EQ(retry_on("[cancelled, unknown, invalid_argument, deadline_exceeded, not_found, "
                     "already_exists, permission_denied, resource_exhausted, failed_precondition, "
                     "aborted, out_of_range, unimplemented, internal, unavailable, data_loss, "
                     "unauthenticated]"),
            (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));
}

TEST(StatusCodes, UpperCaseNamesAreKnown) {
  EXPECT_EQ(retry_on("[CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, "
                     "ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, "
                     "ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, "
                     "UNAUTHENTICATED]"),
            (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));
}

TEST(StatusCodes, MixedCaseNamesAreAccepted) {
  EXPECT_EQ(retry_on("[Unavailable, Resource_Exhausted]"), (std::vector<int>{14, 8}));
}

TEST(StatusCodes, NumbersOneToSixteenAreAccepted) {
  EXPECT_EQ(retry_on("[1, 16, \"14\"]"), (std::vector<int>{1, 16, 14}));
}

TEST(StatusCodes, EmptyListIsAccepted) { EXPECT_TRUE(retry_on("[]").empty()); }

TEST(StatusCodes, BlockSequenceKeepsTheWrittenOrder) {
  auto result = parse_retry(R"(
          retry_on:
            - internal
            - 14
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(retry_of(result).retry_on, (std::vector<int>{13, 14}));
}

TEST(StatusCodes, OkIsNotAnErrorStatus) {
  for (const char* ok : {"ok", "OK", "0"}) {
    SCOPED_TRACE(ok);
    ASSERT_TRUE(has_one_error(parse_retry_on("[" + std::string(ok) + "]"), 7,
                              "retry.retry_on[0]: '" + std::string(ok) + "' is not an error status",
                              "OK (0) means the call succeeded"));
  }
}

TEST(StatusCodes, NumberAboveSixteenIsOutOfRange) {
  for (const char* code : {"17", "-1", "99999999999999999999"}) {
    SCOPED_TRACE(code);
    ASSERT_TRUE(has_one_error(parse_retry_on("[" + std::string(code) + "]"), 7,
                              "status code " + std::string(code) + " is out of range", "1..16"));
  }
}

TEST(StatusCodes, MisspelledNameSuggestsTheStatus) {
  ASSERT_TRUE(has_one_error(parse_retry_on("[unavailible]"), 7,
                            "retry_on[0]: unknown gRPC status 'unavailible'",
                            "did you mean 'unavailable'?"));
  ASSERT_TRUE(has_one_error(parse_retry_on("[resource-exhausted]"), 7, "'resource-exhausted'",
                            "did you mean 'resource_exhausted'?"));
}

TEST(StatusCodes, UnknownNameListsEveryStatus) {
  ASSERT_TRUE(has_one_error(parse_retry_on("[timeout]"), 7, "unknown gRPC status 'timeout'",
                            "cancelled, unknown, invalid_argument"));
  EXPECT_NE(parse_retry_on("[timeout]").errors[0].hint.find("unauthenticated) or a code 1..16"),
            std::string::npos);
}

TEST(StatusCodes, HttpStatusIsNotAGrpcStatus) {
  ASSERT_TRUE(has_one_error(parse_retry_on("[503]"), 7, "status code 503 is out of range"));
}

TEST(StatusCodes, RepeatedStatusIsAnError) {
  auto result = parse_retry(R"(
          retry_on:
            - unavailable
            - UNAVAILABLE
)");
  ASSERT_TRUE(has_one_error(result, 9, "retry_on[1]: unavailable (14) is listed twice",
                            "already listed as item 0 on line 8"));
}

TEST(StatusCodes, NameAndNumberOfTheSameStatusAreRepeats) {
  ASSERT_TRUE(has_one_error(parse_retry_on("[internal, 13]"), 7, "internal (13) is listed twice"));
}

TEST(StatusCodes, SingleNameInsteadOfAListShowsTheList) {
  ASSERT_TRUE(has_one_error(parse_retry_on("unavailable"), 7,
                            "retry.retry_on: expected a sequence, got 'unavailable'",
                            "write a list, e.g. [unavailable]"));
}

TEST(StatusCodes, MapItemIsAnError) {
  ASSERT_TRUE(has_one_error(parse_retry_on("[{ code: 14 }]"), 7,
                            "retry_on[0]: expected a gRPC status name or code, got a map",
                            "unavailable or 14"));
}

TEST(StatusCodes, EveryBadItemIsReported) {
  auto result = parse_retry(R"(
          retry_on:
            - ok
            - unavailable
            - 42
            - nope
)");
  ASSERT_EQ(result.errors.size(), 3u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 8);
  EXPECT_EQ(result.errors[1].line, 10);
  EXPECT_EQ(result.errors[2].line, 11);
}

// ---- Retry policy -----------------------------------------------------------------------------

TEST(RetryPolicy, EmptyMapKeepsTheDefaults) {
  auto result = parse_route("        retry: {}\n");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(retry_of(result).max_attempts, 3u);
  EXPECT_EQ(retry_of(result).backoff_base, Millis(25));
}

TEST(RetryPolicy, ScalarRetryIsAnErrorListingTheKeys) {
  auto result = parse_route("        retry: 3\n");
  ASSERT_TRUE(has_one_error(result, 6, "routes[0].retry: expected a map, got '3'",
                            "keys here: max_attempts, retry_on, backoff, budget"));
}

TEST(RetryPolicy, MisspelledKeySuggestsIt) {
  ASSERT_TRUE(has_one_error(parse_retry("          max_attemps: 2\n"), 7,
                            "retry: unknown key 'max_attemps'", "did you mean 'max_attempts'?"));
  ASSERT_TRUE(has_one_error(parse_retry("          replay_buffer: 1KiB\n"), 7,
                            "unknown key 'replay_buffer'", "did you mean 'replay_buffer_bytes'?"));
}

TEST(RetryPolicy, MaxAttemptsOutsideOneToTenIsOutOfRange) {
  for (const char* attempts : {"0", "11"}) {
    SCOPED_TRACE(attempts);
    ASSERT_TRUE(has_one_error(
        parse_retry("          max_attempts: " + std::string(attempts) + "\n"), 7,
        "retry.max_attempts: " + std::string(attempts) + " is out of range", "1..10"));
  }
}

TEST(RetryPolicy, BackoffBaseAboveMaxIsAnError) {
  auto result = parse_retry(R"(
          backoff: { base: 1s, max: 100ms }
)");
  ASSERT_TRUE(has_one_error(result, 7, "retry.backoff: base (1000ms) is larger than max (100ms)",
                            "25ms and 250ms"));
}

TEST(RetryPolicy, BackoffBaseAboveDefaultMaxIsAnError) {
  auto result = parse_retry(R"(
          backoff:
            base: 300ms
)");
  ASSERT_TRUE(has_one_error(result, 8, "base (300ms) is larger than max (250ms)"));
}

TEST(RetryPolicy, ZeroBackoffIsAnError) {
  auto result = parse_retry(R"(
          backoff: { base: 0ms }
)");
  ASSERT_TRUE(has_one_error(result, 7, "retry.backoff.base: must be at least 1ms", "1ms..24h"));
}

TEST(RetryPolicy, InvalidBackoffIsNotComparedAgain) {
  // max is invalid, so base is not also reported as larger than the default max.
  auto result = parse_retry(R"(
          backoff: { base: 1s, max: soon }
)");
  ASSERT_TRUE(has_one_error(result, 7, "retry.backoff.max: invalid duration 'soon'"));
}

TEST(RetryPolicy, MisspelledBackoffKeySuggestsIt) {
  ASSERT_TRUE(has_one_error(parse_retry("          backoff: { bsae: 1ms }\n"), 7,
                            "unknown key 'bsae'", "did you mean 'base'?"));
}

TEST(RetryPolicy, BudgetRatioAcceptsDecimalsAndIntegers) {
  const std::vector<std::pair<std::string, double>> cases = {
      {"0.2", 0.2}, {"1", 1.0},         {"0", 0.0},   {".5", 0.5},
      {"10", 10.0}, {"\"0.25\"", 0.25}, {"0.0", 0.0}, {"-0", 0.0}};
  for (const auto& [text, expected] : cases) {
    SCOPED_TRACE(text);
    auto result = parse_retry("          budget: { ratio: " + text + " }\n");
    ASSERT_TRUE(result.ok()) << dump(result);
    EXPECT_DOUBLE_EQ(retry_of(result).budget_ratio, expected);
    EXPECT_FALSE(std::signbit(retry_of(result).budget_ratio));
  }
}

TEST(RetryPolicy, BudgetRatioOutsideZeroToTenIsOutOfRange) {
  for (const char* ratio : {"10.5", "-0.1", "11"}) {
    SCOPED_TRACE(ratio);
    auto result = parse_retry("          budget: { ratio: " + std::string(ratio) + " }\n");
    ASSERT_TRUE(has_one_error(result, 7,
                              "retry.budget.ratio: " + std::string(ratio) + " is out of range",
                              "allowed range: 0..10"));
  }
}

TEST(RetryPolicy, BudgetRatioThatIsNotAPlainNumberIsAnError) {
  for (const char* ratio : {"20%", "1e-1", ".inf", ".nan", "0.2.1", ".", "one"}) {
    SCOPED_TRACE(ratio);
    auto result = parse_retry("          budget: { ratio: \"" + std::string(ratio) + "\" }\n");
    ASSERT_TRUE(has_one_error(result, 7, "retry.budget.ratio: expected a number",
                              "such as 0.2 or 1; allowed range: 0..10"));
  }
}

TEST(RetryPolicy, BudgetMinPerSecondIsLimited) {
  auto result = parse_retry("          budget: { min_per_second: 100001 }\n");
  ASSERT_TRUE(
      has_one_error(result, 7, "budget.min_per_second: 100001 is out of range", "0..100000"));
}

TEST(RetryPolicy, MisspelledBudgetKeySuggestsIt) {
  ASSERT_TRUE(has_one_error(parse_retry("          budget: { ration: 0.1 }\n"), 7,
                            "retry.budget: unknown key 'ration'", "did you mean 'ratio'?"));
}

TEST(RetryPolicy, ReplayBufferAbove64MiBIsOutOfRange) {
  auto result = parse_retry("          replay_buffer_bytes: 65MiB\n");
  ASSERT_TRUE(has_one_error(result, 7, "retry.replay_buffer_bytes: size 65MiB is out of range",
                            "0..64MiB bytes"));
}

TEST(RetryPolicy, ReplayBufferTakesPlainBytes) {
  auto result = parse_retry("          replay_buffer_bytes: 4096\n");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(retry_of(result).replay_buffer_bytes, 4096u);
}

TEST(RetryPolicy, ReplayBufferWithDecimalUnitIsAnError) {
  auto result = parse_retry("          replay_buffer_bytes: 1MB\n");
  ASSERT_TRUE(has_one_error(result, 7, "unknown unit 'MB'", "KiB, MiB and GiB"));
}

// ---- Health checks ----------------------------------------------------------------------------

const HealthCheck& health_of(const ParseResult& result) {
  return result.config->clusters[0].health_check;
}

TEST(HealthCheck, AbsentMapLeavesHealthChecksOff) {
  auto result = parse_cluster("    endpoints: [\"127.0.0.1:1\"]\n");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_FALSE(health_of(result).enabled);
}

TEST(HealthCheck, EmptyMapEnablesHealthChecksWithTheDefaults) {
  auto result = parse_cluster(R"(
    health_check: {}
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_TRUE(health_of(result).enabled);
  EXPECT_EQ(health_of(result).interval, seconds(5));
  EXPECT_EQ(health_of(result).timeout, seconds(1));
}

TEST(HealthCheck, MapWithSettingsEnablesHealthChecks) {
  auto result = parse_cluster(R"(
    health_check:
      service: ""
      interval: 30s
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_TRUE(health_of(result).enabled);
  EXPECT_EQ(health_of(result).service, "");
  EXPECT_EQ(health_of(result).interval, seconds(30));
}

TEST(HealthCheck, ExplicitlyEnabledIsEnabled) {
  auto result = parse_cluster(R"(
    health_check: { enabled: true }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_TRUE(health_of(result).enabled);
}

TEST(HealthCheck, EnabledFalseKeepsTheSettingsButStaysOff) {
  auto result = parse_cluster(R"(
    health_check:
      enabled: false
      interval: 1m
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_FALSE(health_of(result).enabled);
  EXPECT_EQ(health_of(result).interval, minutes(1));
}

TEST(HealthCheck, EmptyValueAsksForAnEmptyMap) {
  auto result = parse_cluster(R"(
    health_check:
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "clusters[0].health_check: expected a map, got null",
                            "health_check: {}"));
}

TEST(HealthCheck, TrueAsksForAnEmptyMap) {
  auto result = parse_cluster(R"(
    health_check: true
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(
      has_one_error(result, 8, "health_check: expected a map, got 'true'", "health_check: {}"));
}

TEST(HealthCheck, BadEnabledIsAnError) {
  auto result = parse_cluster(R"(
    health_check: { enabled: sometimes }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "health_check.enabled: expected true or false"));
}

TEST(HealthCheck, ServiceMustBeAString) {
  auto result = parse_cluster(R"(
    health_check: { service: [a, b] }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "health_check.service: expected a string, got a sequence",
                            "not a sequence"));
}

TEST(HealthCheck, IntervalBelowTenMillisecondsIsAnError) {
  auto result = parse_cluster(R"(
    health_check: { interval: 9ms, timeout: 1ms }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "health_check.interval: must be at least 10ms"));
}

TEST(HealthCheck, ZeroTimeoutIsAnError) {
  auto result = parse_cluster(R"(
    health_check: { timeout: 0s }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "health_check.timeout: must be at least 1ms"));
}

TEST(HealthCheck, NegativeJitterIsAnError) {
  auto result = parse_cluster(R"(
    health_check: { interval_jitter: -1s }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "interval_jitter: invalid duration '-1s'", "negative"));
}

TEST(HealthCheck, ThresholdsOutsideOneToHundredAreOutOfRange) {
  auto result = parse_cluster(R"(
    health_check:
      healthy_threshold: 0
      unhealthy_threshold: 101
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 9);
  EXPECT_NE(result.errors[0].message.find("health_check.healthy_threshold: 0 is out of range"),
            std::string::npos);
  EXPECT_EQ(result.errors[0].hint, "allowed range: 1..100");
  EXPECT_EQ(result.errors[1].line, 10);
  EXPECT_EQ(result.errors[1].hint, "allowed range: 1..100");
}

TEST(HealthCheck, TimeoutLongerThanIntervalIsAnErrorAtTheTimeout) {
  auto result = parse_cluster(R"(
    health_check:
      interval: 1s
      timeout: 2s
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 10,
                            "clusters[0].health_check: timeout (2000ms) is longer than interval "
                            "(1000ms)",
                            "make timeout <= interval"));
}

TEST(HealthCheck, IntervalShorterThanTheDefaultTimeoutIsAnErrorAtTheInterval) {
  auto result = parse_cluster(R"(
    health_check:
      interval: 500ms
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 9, "timeout (1000ms) is longer than interval (500ms)",
                            "defaults: timeout 1s, interval 5s"));
}

TEST(HealthCheck, InvalidTimeoutIsNotComparedAgain) {
  auto result = parse_cluster(R"(
    health_check: { interval: 20ms, timeout: 1.5s }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "health_check.timeout: invalid duration '1.5s'"));
}

TEST(HealthCheck, MisspelledKeySuggestsIt) {
  auto result = parse_cluster(R"(
    health_check:
      unhealthy_treshold: 2
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 9, "health_check: unknown key 'unhealthy_treshold'",
                            "did you mean 'unhealthy_threshold'?"));
}

// ---- Outlier detection ------------------------------------------------------------------------

const OutlierDetection& outlier_of(const ParseResult& result) {
  return result.config->clusters[0].outlier_detection;
}

TEST(OutlierDetection, EmptyMapKeepsItEnabledWithTheDefaults) {
  auto result = parse_cluster(R"(
    outlier_detection: {}
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_TRUE(outlier_of(result).enabled);
  EXPECT_EQ(outlier_of(result).failure_statuses, (std::vector<int>{14, 13}));
}

TEST(OutlierDetection, FailureStatusesReplaceTheDefaults) {
  auto result = parse_cluster(R"(
    outlier_detection: { failure_statuses: [DEADLINE_EXCEEDED] }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(outlier_of(result).failure_statuses, (std::vector<int>{4}));
}

TEST(OutlierDetection, OkFailureStatusIsAnError) {
  auto result = parse_cluster(R"(
    outlier_detection:
      failure_statuses: [internal, OK]
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 9,
                            "outlier_detection.failure_statuses[1]: 'OK' is not an error status",
                            "counted as a failure"));
}

TEST(OutlierDetection, UnknownFailureStatusSuggestsOne) {
  auto result = parse_cluster(R"(
    outlier_detection:
      failure_statuses: [internl]
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(
      has_one_error(result, 9, "unknown gRPC status 'internl'", "did you mean 'internal'?"));
}

TEST(OutlierDetection, ConsecutiveFailuresOutsideOneToThousandAreOutOfRange) {
  for (const char* count : {"0", "1001"}) {
    SCOPED_TRACE(count);
    auto result =
        parse_cluster("    outlier_detection: { consecutive_failures: " + std::string(count) +
                      " }\n    endpoints: [\"127.0.0.1:1\"]\n");
    ASSERT_TRUE(has_one_error(
        result, 8, "consecutive_failures: " + std::string(count) + " is out of range", "1..1000"));
  }
}

TEST(OutlierDetection, EjectionPercentAbove100IsOutOfRange) {
  auto result = parse_cluster(R"(
    outlier_detection: { max_ejection_percent: 101 }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "max_ejection_percent: 101 is out of range", "0..100"));
}

TEST(OutlierDetection, ZeroBaseEjectionTimeIsAnError) {
  auto result = parse_cluster(R"(
    outlier_detection: { base_ejection_time: 0s }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "base_ejection_time: must be at least 1ms"));
}

TEST(OutlierDetection, MaxEjectionTimeBelowBaseIsAnErrorAtTheMax) {
  auto result = parse_cluster(R"(
    outlier_detection:
      base_ejection_time: 1m
      max_ejection_time: 30s
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 10,
                            "outlier_detection: max_ejection_time (30000ms) is shorter than "
                            "base_ejection_time (60000ms)",
                            "must be >= base_ejection_time"));
}

TEST(OutlierDetection, BaseEjectionTimeAboveTheDefaultMaxIsAnErrorAtTheBase) {
  auto result = parse_cluster(R"(
    outlier_detection:
      base_ejection_time: 10m
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 9,
                            "max_ejection_time (300000ms) is shorter than "
                            "base_ejection_time (600000ms)",
                            "defaults: 30s and 300s"));
}

TEST(OutlierDetection, BadEnabledIsAnError) {
  auto result = parse_cluster(R"(
    outlier_detection: { enabled: "off" }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8,
                            "outlier_detection.enabled: expected true or false, got "
                            "'off'",
                            "write true or false"));
}

TEST(OutlierDetection, MisspelledKeySuggestsIt) {
  auto result = parse_cluster(R"(
    outlier_detection:
      consecutive_falures: 3
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 9, "outlier_detection: unknown key 'consecutive_falures'",
                            "did you mean 'consecutive_failures'?"));
}

// ---- Circuit breakers -------------------------------------------------------------------------

TEST(CircuitBreakers, LimitsAboveTenMillionAreOutOfRange) {
  auto result = parse_cluster(R"(
    circuit_breakers:
      max_calls: 10000001
      max_calls_per_endpoint: -1
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 9);
  EXPECT_NE(result.errors[0].message.find("circuit_breakers.max_calls: 10000001 is out of range"),
            std::string::npos);
  EXPECT_EQ(result.errors[0].hint, "allowed range: 0..10000000");
  EXPECT_EQ(result.errors[1].line, 10);
  EXPECT_EQ(result.errors[1].hint, "allowed range: 0..10000000");
}

TEST(CircuitBreakers, NonIntegerLimitIsAnError) {
  auto result = parse_cluster(R"(
    circuit_breakers: { max_calls: unlimited }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(
      has_one_error(result, 8, "max_calls: expected an integer, got 'unlimited'", "0..10000000"));
}

TEST(CircuitBreakers, MisspelledKeySuggestsIt) {
  auto result = parse_cluster(R"(
    circuit_breakers: { max_call: 10 }
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "circuit_breakers: unknown key 'max_call'",
                            "did you mean 'max_calls'?"));
}

TEST(CircuitBreakers, SequenceIsNotAMap) {
  auto result = parse_cluster(R"(
    circuit_breakers: [100]
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "circuit_breakers: expected a map, got a sequence",
                            "max_calls, max_calls_per_endpoint"));
}

}  // namespace
}  // namespace h2mesh::config
