#include "proxy/retry.h"

#include <gtest/gtest.h>

namespace h2mesh::proxy {
namespace {

TimePoint at_ms(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

TEST(RetryBudget, MinimumPerSecondAllowsRetriesWithoutTraffic) {
  RetryBudget b;
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += b.try_retry(at_ms(1000), 0.2, 3);
  EXPECT_EQ(allowed, 30);  // 3 per second over the 10 s window
}

TEST(RetryBudget, RatioAddsRetriesInProportionToCalls) {
  RetryBudget b;
  for (int i = 0; i < 100; ++i) b.record_call(at_ms(5000));
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += b.try_retry(at_ms(5000), 0.2, 0);
  EXPECT_EQ(allowed, 20);
}

TEST(RetryBudget, WindowForgetsOldRetries) {
  RetryBudget b;
  int first = 0;
  for (int i = 0; i < 50; ++i) first += b.try_retry(at_ms(1000), 0.0, 1);
  EXPECT_EQ(first, 10);
  EXPECT_FALSE(b.try_retry(at_ms(5000), 0.0, 1));
  // Ten seconds later the first second's retries have left the window.
  EXPECT_TRUE(b.try_retry(at_ms(11500), 0.0, 1));
}

TEST(RetryBudget, ZeroBudgetAllowsNothing) {
  RetryBudget b;
  for (int i = 0; i < 10; ++i) b.record_call(at_ms(0));
  EXPECT_FALSE(b.try_retry(at_ms(0), 0.0, 0));
}

TEST(RetryBackoff, GrowsExponentiallyWithFullJitterAndCap) {
  config::RetryPolicy p;
  p.backoff_base = std::chrono::milliseconds(10);
  p.backoff_max = std::chrono::milliseconds(35);
  Random r(7);
  Duration max_seen[5] = {};
  for (int i = 0; i < 2000; ++i) {
    for (uint32_t retry = 1; retry <= 4; ++retry) {
      Duration d = retry_backoff(retry, p, r);
      ASSERT_GE(d, Duration::zero());
      max_seen[retry] = std::max(max_seen[retry], d);
    }
  }
  auto ms = [](Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  EXPECT_LE(ms(max_seen[1]), 10);
  EXPECT_GE(ms(max_seen[1]), 9);
  EXPECT_LE(ms(max_seen[2]), 20);
  EXPECT_GE(ms(max_seen[2]), 19);
  EXPECT_LE(ms(max_seen[3]), 35);  // 40 capped at 35
  EXPECT_GE(ms(max_seen[3]), 34);
  EXPECT_LE(ms(max_seen[4]), 35);
}

}  // namespace
}  // namespace h2mesh::proxy
