#pragma once

#include <chrono>
#include <cstdint>

#include "common/time.h"

namespace h2mesh {

// Loop time (the steady clock) to wall-clock time, for access log lines and spans. The offset
// between the two clocks is read once and refreshed about once a second, not per call: the
// loop's cached time lags the real clock by a varying amount, so converting each time against
// a fresh reading could end a child span after its parent. One offset keeps a call's times
// ordered exactly as the loop saw them. One per worker (not thread-safe).
class WallAnchor {
 public:
  WallAnchor();
  // Takes a new offset when the last one is over a second old (NTP adjusts the wall clock).
  void refresh(TimePoint loop_now);
  std::chrono::system_clock::time_point wall(TimePoint t) const;
  uint64_t unix_nanos(TimePoint t) const;

 private:
  void reset(TimePoint loop_now);
  std::chrono::system_clock::duration offset_{};
  TimePoint at_{};
};

}  // namespace h2mesh
