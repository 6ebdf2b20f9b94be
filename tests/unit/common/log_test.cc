#include "common/log.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "common/time.h"

namespace h2mesh::log {
namespace {

TEST(LogLimiter, FirstLinePassesThenOnePerInterval) {
  Limiter limiter(seconds(1));
  const TimePoint t0 = Clock::now();
  uint64_t held_back = 99;
  EXPECT_TRUE(limiter.allow(t0, &held_back));
  EXPECT_EQ(held_back, 0u);
  for (int i = 1; i <= 1000; ++i)
    EXPECT_FALSE(limiter.allow(t0 + milliseconds(i % 1000), &held_back)) << i;
  EXPECT_TRUE(limiter.allow(t0 + seconds(1), &held_back));
  EXPECT_EQ(held_back, 1000u);  // the line after a flood says how many were not written
  EXPECT_FALSE(limiter.allow(t0 + milliseconds(1500), &held_back));
  EXPECT_TRUE(limiter.allow(t0 + seconds(5), &held_back));
  EXPECT_EQ(held_back, 1u);
}

TEST(LogLimiter, QuietPeriodsLetEveryLineThrough) {
  Limiter limiter(milliseconds(100));
  const TimePoint t0 = Clock::now();
  uint64_t held_back = 0;
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(limiter.allow(t0 + milliseconds(100 * i), &held_back)) << i;
    EXPECT_EQ(held_back, 0u);
  }
}

}  // namespace
}  // namespace h2mesh::log
