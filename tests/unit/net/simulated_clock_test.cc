#include "net/simulated_clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "net/event_loop.h"

namespace h2mesh::net {
namespace {

using namespace std::chrono_literals;

TEST(SimulatedClock, AdvanceRunsDueTimersInDeadlineOrderEachAtItsDeadline) {
  SimulatedClock clock;
  EventLoop loop(clock);
  const TimePoint t0 = clock.now();
  std::vector<std::pair<std::string, TimePoint>> fired;
  auto timer = [&](const char* name) {
    return std::make_unique<Timer>(loop,
                                   [&fired, &loop, name] { fired.emplace_back(name, loop.now()); });
  };
  auto a = timer("30"), b = timer("10a"), c = timer("20"), d = timer("10b"), e = timer("50");
  a->arm(30ms);
  b->arm(10ms);
  c->arm(20ms);
  d->arm(10ms);
  e->arm(50ms);

  clock.advance(40ms);
  ASSERT_EQ(fired.size(), 4u);
  const std::vector<std::pair<std::string, TimePoint>> expected = {
      {"10a", t0 + 10ms}, {"10b", t0 + 10ms}, {"20", t0 + 20ms}, {"30", t0 + 30ms}};
  EXPECT_EQ(fired, expected);
  EXPECT_EQ(clock.now(), t0 + 40ms);
  EXPECT_EQ(loop.now(), t0 + 40ms);
  EXPECT_TRUE(e->armed());

  clock.advance(10ms);
  ASSERT_EQ(fired.size(), 5u);
  EXPECT_EQ(fired.back(), std::make_pair(std::string("50"), t0 + 50ms));
}

TEST(SimulatedClock, TimersArmedByCallbacksFireWithinTheSameAdvance) {
  SimulatedClock clock;
  EventLoop loop(clock);
  const TimePoint t0 = clock.now();
  std::vector<Duration> ticks;
  Timer* self = nullptr;
  Timer tick(loop, [&] {
    ticks.push_back(loop.now() - t0);
    self->arm(100ms);
  });
  self = &tick;
  tick.arm(100ms);
  clock.advance(1s);
  ASSERT_EQ(ticks.size(), 10u);
  for (size_t i = 0; i < ticks.size(); ++i) EXPECT_EQ(ticks[i], Duration(100ms) * (i + 1));
  EXPECT_TRUE(tick.armed());
}

TEST(SimulatedClock, AdvanceUntilStopsAtTheMomentTheConditionHolds) {
  SimulatedClock clock;
  EventLoop loop(clock);
  bool flag = false;
  Timer noise(loop, [] {});
  noise.arm(30ms);
  Timer set(loop, [&] { flag = true; });
  set.arm(70ms);
  EXPECT_TRUE(clock.advance_until([&] { return flag; }, 1s));
  EXPECT_EQ(clock.elapsed(), 70ms);
  EXPECT_FALSE(clock.advance_until([] { return false; }, 200ms));
  EXPECT_EQ(clock.elapsed(), 270ms);
}

TEST(SimulatedClock, ReadyWorkRunsWithoutTimePassing) {
  SimulatedClock clock;
  EventLoop loop(clock);
  std::vector<std::string> ran;
  loop.post([&] {
    ran.push_back("posted");
    loop.defer([&] { ran.push_back("deferred by posted"); });
  });
  loop.defer([&] { ran.push_back("deferred"); });
  Timer now(loop, [&] { ran.push_back("zero timer"); });
  now.arm(Duration::zero());
  clock.run_ready();
  // One iteration: posted work (it arrives as an I/O event), due timers, then deferred work.
  EXPECT_EQ(ran,
            (std::vector<std::string>{"posted", "zero timer", "deferred", "deferred by posted"}));
  EXPECT_EQ(clock.elapsed(), Duration::zero());
  EXPECT_FALSE(loop.run_ready()) << "nothing left to do";
}

// Two loops on one clock (a main thread's and a worker's): timers of both run in one order.
TEST(SimulatedClock, TimersOfSeveralLoopsInterleaveByDeadline) {
  SimulatedClock clock;
  EventLoop main_loop(clock), worker_loop(clock);
  std::vector<int> fired;
  Timer m1(main_loop, [&] { fired.push_back(1); });
  Timer w2(worker_loop, [&] { fired.push_back(2); });
  Timer m3(main_loop, [&] { fired.push_back(3); });
  m1.arm(1ms);
  w2.arm(2ms);
  m3.arm(3ms);
  clock.advance(5ms);
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
}

class CountingHandler final : public IoHandler {
 public:
  void on_io(uint32_t events) override {
    ++calls;
    last = events;
  }
  int calls = 0;
  uint32_t last = 0;
};

TEST(EventLoopNotify, ReportsOnceInTheNextIterationWithMergedEvents) {
  SimulatedClock clock;
  EventLoop loop(clock);
  CountingHandler h, cancelled;
  loop.notify(&h, 1);
  loop.notify(&h, 4);
  loop.notify(&cancelled, 1);
  loop.cancel_notify(&cancelled);
  EXPECT_EQ(h.calls, 0) << "never from inside notify()";
  clock.run_ready();
  EXPECT_EQ(h.calls, 1);
  EXPECT_EQ(h.last, 5u);
  EXPECT_EQ(cancelled.calls, 0);
}

}  // namespace
}  // namespace h2mesh::net
