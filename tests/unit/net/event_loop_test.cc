#include "net/event_loop.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

namespace h2mesh::net {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// Timers due in the past fire on the loop's next iteration, in deadline order; timers due at
// the same time fire in the order they were armed. A last timer stops the loop.
TEST(Timer, DueTimersFireInDeadlineThenArmingOrder) {
  EventLoop loop;
  loop.update_now();
  const TimePoint base = loop.now() - milliseconds(10);
  std::vector<int> fired;
  std::vector<std::unique_ptr<Timer>> timers;
  const int offsets_us[] = {500, 100, 300, 100, 0, 300};
  for (int i = 0; i < 6; ++i) {
    timers.push_back(std::make_unique<Timer>(loop, [&fired, i] { fired.push_back(i); }));
    timers.back()->arm_at(base + microseconds(offsets_us[i]));
  }
  Timer stop(loop, [&] { loop.stop(); });
  stop.arm_at(loop.now());
  loop.run();
  EXPECT_EQ(fired, (std::vector<int>{4, 1, 3, 2, 5, 0}));
  for (auto& t : timers) EXPECT_FALSE(t->armed());
}

TEST(Timer, CancelledRearmedAndDestroyedTimersBehave) {
  EventLoop loop;
  loop.update_now();
  const TimePoint due = loop.now() - milliseconds(1);
  std::vector<int> fired;
  Timer a(loop, [&] { fired.push_back(1); });
  Timer b(loop, [&] { fired.push_back(2); });
  Timer later(loop, [&] { fired.push_back(3); });
  auto gone = std::make_unique<Timer>(loop, [&] { fired.push_back(4); });
  a.arm_at(due);
  b.arm_at(due);
  b.cancel();
  EXPECT_FALSE(b.armed());
  later.arm(std::chrono::hours(1));
  gone->arm_at(due);
  gone.reset();  // destroying an armed timer disarms it
  a.arm_at(due - milliseconds(1));  // re-arming moves it
  Timer stop(loop, [&] { loop.stop(); });
  stop.arm_at(loop.now());
  loop.run();
  EXPECT_EQ(fired, (std::vector<int>{1}));
  EXPECT_TRUE(later.armed());
}

// A callback may re-arm its own timer and cancel another that is due in the same iteration.
TEST(Timer, CallbacksMayRearmThemselvesAndCancelOthers) {
  EventLoop loop;
  loop.update_now();
  const TimePoint due = loop.now() - milliseconds(1);
  std::vector<int> fired;
  int repeats = 0;
  Timer victim(loop, [&] { fired.push_back(2); });
  Timer killer(loop, [&] {
    fired.push_back(1);
    victim.cancel();
  });
  Timer* self = nullptr;
  Timer again(loop, [&] {
    fired.push_back(3);
    if (++repeats < 3) self->arm(microseconds(0));
  });
  self = &again;
  Timer* stop_self = nullptr;
  Timer stop(loop, [&] {
    if (again.armed()) {
      stop_self->arm(milliseconds(1));
    } else {
      loop.stop();
    }
  });
  stop_self = &stop;
  killer.arm_at(due);
  victim.arm_at(due + microseconds(1));
  again.arm_at(due + microseconds(2));
  stop.arm_at(loop.now());
  loop.run();
  EXPECT_EQ(fired, (std::vector<int>{1, 3, 3, 3}));
}

// Random arming, re-arming and cancelling of many timers against a sorted model.
TEST(Timer, RandomOperationsFireInTheModelsOrder) {
  EventLoop loop;
  loop.update_now();
  const TimePoint base = loop.now() - milliseconds(100);
  std::mt19937 rng(7);
  constexpr int kTimers = 300;
  std::vector<int> fired;
  std::vector<std::unique_ptr<Timer>> timers;
  // Model: per timer, (deadline offset, arming sequence) while armed.
  std::vector<std::tuple<bool, int, int>> model(kTimers, {false, 0, 0});
  int seq = 0;
  for (int i = 0; i < kTimers; ++i)
    timers.push_back(std::make_unique<Timer>(loop, [&fired, i] { fired.push_back(i); }));
  for (int op = 0; op < 5000; ++op) {
    int i = static_cast<int>(rng() % kTimers);
    if (rng() % 4 == 0) {
      timers[i]->cancel();
      model[i] = {false, 0, 0};
    } else {
      int offset = static_cast<int>(rng() % 50);  // many ties
      timers[i]->arm_at(base + microseconds(offset));
      model[i] = {true, offset, seq++};
    }
    ASSERT_EQ(timers[i]->armed(), std::get<0>(model[i]));
  }
  std::vector<std::tuple<int, int, int>> expected;
  for (int i = 0; i < kTimers; ++i)
    if (std::get<0>(model[i])) expected.emplace_back(std::get<1>(model[i]), std::get<2>(model[i]), i);
  std::sort(expected.begin(), expected.end());
  Timer stop(loop, [&] { loop.stop(); });
  stop.arm_at(loop.now());
  loop.run();
  std::vector<int> want;
  for (auto& e : expected) want.push_back(std::get<2>(e));
  EXPECT_EQ(fired, want);
}

}  // namespace
}  // namespace h2mesh::net
