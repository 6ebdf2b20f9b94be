#pragma once

// Scripted test steps on one event loop, without sleeps: each step runs an action, then the
// loop keeps running (checking every millisecond) until the step's condition holds or its time
// limit passes.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/time.h"
#include "net/event_loop.h"

namespace h2mesh_test_fakes {

class LoopScript {
 public:
  explicit LoopScript(h2mesh::net::EventLoop& loop)
      : loop_(loop), tick_(loop, [this] { on_tick(); }) {}

  // Runs `action` (may be empty), then waits until `until()` holds, at most `limit`.
  LoopScript& step(std::string name, std::function<void()> action, std::function<bool()> until,
                   h2mesh::Duration limit = std::chrono::seconds(10)) {
    steps_.push_back(Step{std::move(name), std::move(action), std::move(until), limit});
    return *this;
  }
  LoopScript& wait(std::string name, std::function<bool()> until,
                   h2mesh::Duration limit = std::chrono::seconds(10)) {
    return step(std::move(name), nullptr, std::move(until), limit);
  }

  // Runs every step inside one loop.run() (an EventLoop runs only once). `each`, when given,
  // replaces every step's own limit. Returns "" when all steps completed, otherwise the name of
  // the step that did not finish in time.
  std::string run(std::optional<h2mesh::Duration> each = std::nullopt) {
    if (each)
      for (auto& s : steps_) s.limit = *each;
    loop_.update_now();
    tick_.arm(h2mesh::Duration::zero());
    loop_.run();
    return failed_;
  }

 private:
  struct Step {
    std::string name;
    std::function<void()> action;
    std::function<bool()> until;
    h2mesh::Duration limit;
  };

  void on_tick() {
    while (next_ < steps_.size()) {
      Step& s = steps_[next_];
      if (!started_) {
        started_ = true;
        deadline_ = h2mesh::Clock::now() + s.limit;
        if (s.action) s.action();
      }
      if (!s.until()) break;
      ++next_;
      started_ = false;
    }
    if (next_ == steps_.size()) {
      loop_.stop();
      return;
    }
    if (h2mesh::Clock::now() > deadline_) {
      failed_ = steps_[next_].name;
      loop_.stop();
      return;
    }
    tick_.arm(std::chrono::milliseconds(1));
  }

  h2mesh::net::EventLoop& loop_;
  h2mesh::net::Timer tick_;
  std::vector<Step> steps_;
  size_t next_ = 0;
  bool started_ = false;
  h2mesh::TimePoint deadline_{};
  std::string failed_;
};

}  // namespace h2mesh_test_fakes
