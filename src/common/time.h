#pragma once

#include <chrono>

namespace h2mesh {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::nanoseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Where an event loop reads "now". Production loops read the steady clock directly (no
// TimeSource at all, so the data path pays nothing); tests give a loop a net::SimulatedClock,
// whose time moves only when the test advances it. Read on the loop's thread, once per loop
// iteration; everything else asks the loop (EventLoop::now()).
class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual TimePoint now() const = 0;
};

}  // namespace h2mesh
