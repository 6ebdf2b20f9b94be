// WallAnchor: loop times become wall-clock times with one offset, so the times of one call keep
// their order and distances exactly (a child span never ends after its parent).

#include "common/wall_anchor.h"

#include <gtest/gtest.h>

namespace h2mesh {
namespace {

using namespace std::chrono_literals;

TEST(WallAnchor, DistancesBetweenLoopTimesAreKeptExactly) {
  WallAnchor anchor;
  const TimePoint t0 = Clock::now();
  const TimePoint t1 = t0 + 1234567ns;
  EXPECT_EQ(anchor.wall(t1) - anchor.wall(t0), std::chrono::nanoseconds(1234567));
  EXPECT_EQ(anchor.unix_nanos(t1) - anchor.unix_nanos(t0), 1234567u);
}

TEST(WallAnchor, ShowsTheWallClock) {
  WallAnchor anchor;
  const auto before = std::chrono::system_clock::now();
  const auto shown = anchor.wall(Clock::now());
  const auto after = std::chrono::system_clock::now();
  // The offset was read when the anchor was made: within a few milliseconds of now.
  EXPECT_GT(shown, before - 50ms);
  EXPECT_LT(shown, after + 50ms);
}

TEST(WallAnchor, RefreshTakesANewOffsetOnlyAfterASecond) {
  WallAnchor anchor;
  const TimePoint t = Clock::now();
  const auto first = anchor.unix_nanos(t);
  anchor.refresh(t + 500ms);  // within the second: same offset, same answer
  EXPECT_EQ(anchor.unix_nanos(t), first);
}

}  // namespace
}  // namespace h2mesh
