#include "net/simulated_clock.h"

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "common/log.h"
#include "net/event_loop.h"

namespace h2mesh::net {

// Not the steady clock's epoch: code that subtracts a duration from now() (ejection windows,
// "last seen" ages) must not step below the epoch, as it never would in production.
SimulatedClock::SimulatedClock() : start_(TimePoint(std::chrono::hours(24))), now_(start_) {}

SimulatedClock::~SimulatedClock() {
  if (!loops_.empty()) {
    LOG_ERROR("simulated clock destroyed before %zu event loop(s) reading it", loops_.size());
    abort();
  }
}

void SimulatedClock::detach(EventLoop* loop) {
  loops_.erase(std::remove(loops_.begin(), loops_.end(), loop), loops_.end());
}

void SimulatedClock::run_ready() {
  // One loop's work may make another's ready (a transport pair spanning two loops).
  bool busy = true;
  while (busy) {
    busy = false;
    for (size_t i = 0; i < loops_.size(); ++i) busy |= loops_[i]->run_ready();
  }
}

bool SimulatedClock::step_to_next_timer(TimePoint target) {
  std::optional<TimePoint> next;
  for (EventLoop* loop : loops_) {
    auto t = loop->next_timer();
    if (t && (!next || *t < *next)) next = t;
  }
  if (!next || *next > target) return false;
  // A timer armed in the past (arm_at a moment already gone) fires now, as it would for real.
  now_ = std::max(now_, *next);
  run_ready();
  return true;
}

void SimulatedClock::advance(Duration d) {
  const TimePoint target = now_ + d;
  run_ready();
  while (step_to_next_timer(target)) {
  }
  now_ = target;
  run_ready();
}

bool SimulatedClock::advance_until(const std::function<bool()>& done, Duration limit) {
  const TimePoint target = now_ + limit;
  run_ready();
  if (done()) return true;
  while (step_to_next_timer(target)) {
    if (done()) return true;
  }
  now_ = target;
  run_ready();
  return done();
}

}  // namespace h2mesh::net
