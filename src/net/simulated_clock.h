#pragma once

#include <functional>
#include <vector>

#include "common/time.h"

namespace h2mesh::net {

class EventLoop;

// Simulated time for tests: loops built with `EventLoop(clock)` read this clock, and time moves
// only when the test advances it. Advancing runs every due timer of those loops in deadline
// order, each at exactly its deadline, with the loops' ready work (I/O, notifications, deferred
// work and deletions) run between timers. A second of timeouts costs microseconds and the
// result does not depend on the machine's load. Single-threaded: the clock and its loops belong
// to the test's thread.
class SimulatedClock final : public TimeSource {
 public:
  SimulatedClock();
  ~SimulatedClock() override;
  SimulatedClock(const SimulatedClock&) = delete;
  SimulatedClock& operator=(const SimulatedClock&) = delete;

  TimePoint now() const override { return now_; }
  // Time since the clock was created.
  Duration elapsed() const { return now_ - start_; }

  // Runs the ready work of every loop at the current time until none is left.
  void run_ready();
  // Moves time forward by `d` (see above); afterwards now() is exactly `d` later.
  void advance(Duration d);
  // Like advance(limit), but stops at the first timer deadline (or at the current time) after
  // which `done()` holds: now() is then the moment it became true. Returns false, with `limit`
  // elapsed, if it never did.
  bool advance_until(const std::function<bool()>& done, Duration limit);

 private:
  friend class EventLoop;
  void attach(EventLoop* loop) { loops_.push_back(loop); }
  void detach(EventLoop* loop);
  // Steps to the earliest timer deadline not after `target`; false if there is none.
  bool step_to_next_timer(TimePoint target);

  TimePoint start_;
  TimePoint now_;
  std::vector<EventLoop*> loops_;  // not owned; they detach when destroyed
};

}  // namespace h2mesh::net
