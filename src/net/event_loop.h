#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "common/time.h"

namespace h2mesh::net {

// Receives readiness events for one file descriptor. Called on the loop's thread.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual void on_io(uint32_t epoll_events) = 0;
};

// Objects whose destruction is deferred to the end of the current loop iteration.
class Deletable {
 public:
  virtual ~Deletable() = default;
};

class SimulatedClock;
class Timer;

// One epoll loop per thread. Everything but post() must be called on the loop's own thread.
class EventLoop {
 public:
  // Reads the steady clock.
  EventLoop();
  // Reads `clock` instead, which must outlive the loop: time moves only when the test advances
  // the clock (SimulatedClock::advance runs this loop's due timers), and run() is not used.
  explicit EventLoop(SimulatedClock& clock);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // `handler` is not owned and must stay valid until remove(fd).
  void add(int fd, uint32_t events, IoHandler* handler);
  void modify(int fd, uint32_t events, IoHandler* handler);
  void remove(int fd);

  // Reports `events` to `handler` in the next iteration, as if epoll had: how transports without
  // a file descriptor (the in-memory pair) signal readiness. Events for one handler merge until
  // delivered. cancel_notify must be called before `handler` dies if a report may be pending.
  void notify(IoHandler* handler, uint32_t events);
  void cancel_notify(IoHandler* handler);

  // Thread-safe: runs `fn` on the loop thread during a later iteration. The only cross-thread
  // primitive of the data path; used for snapshots, stats collection and shutdown, never per call.
  void post(std::function<void()> fn);

  // Runs `fn` at the end of the current iteration, after all I/O events were handled (used to
  // batch writes: one flush per connection per iteration).
  void defer(std::function<void()> fn);
  void defer_delete(std::unique_ptr<Deletable> object);

  void run();   // until stop()
  // Runs iterations without blocking until one finds nothing to do (no I/O event, notification,
  // due timer or deferred work): what a test calls between steps. Returns whether anything ran.
  bool run_ready();
  // Runs deferred work and deletions now (used when tearing a worker down).
  void run_deferred();
  void stop();  // thread-safe

  // Cached at the start of each iteration.
  TimePoint now() const { return now_; }
  void update_now() { now_ = read_clock(); }
  // Deadline of the earliest armed timer (for SimulatedClock).
  std::optional<TimePoint> next_timer() const;

 private:
  friend class Timer;

  // Armed timers as a binary min-heap on (deadline, arming order); each timer knows its slot,
  // so arming, re-arming and cancelling cost O(log n) and never allocate once the vector has
  // grown to the largest number of armed timers.
  void heap_insert(Timer* t);
  void heap_remove(Timer* t);
  void heap_place(Timer* t, size_t slot);
  void sift_up(size_t slot);
  void sift_down(size_t slot);
  static bool earlier(const Timer* a, const Timer* b);

  TimePoint read_clock() const { return time_ ? time_->now() : Clock::now(); }
  // One iteration: wait up to `timeout_ms` for I/O, then events, notifications, due timers,
  // deferred work. Returns whether there was anything to do.
  bool iterate(int timeout_ms);
  bool run_timers();
  bool deliver_notified();
  void drain_posted();
  int next_timeout_ms() const;

  const TimeSource* time_ = nullptr;  // null: the steady clock, read without a virtual call
  SimulatedClock* simulated_ = nullptr;
  int epfd_ = -1;
  int wakefd_ = -1;
  bool stopping_ = false;
  TimePoint now_;
  std::vector<Timer*> timers_;
  uint64_t timer_seq_ = 0;
  std::vector<std::function<void()>> deferred_;
  std::vector<std::unique_ptr<Deletable>> to_delete_;
  std::vector<std::function<void()>> deferred_running_;  // scratch of run_deferred
  std::vector<std::unique_ptr<Deletable>> deleting_;     // scratch of run_deferred
  std::vector<std::pair<IoHandler*, uint32_t>> notified_;
  std::vector<std::pair<IoHandler*, uint32_t>> delivering_;  // scratch of deliver_notified
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  bool stop_requested_ = false;  // guarded by posted_mu_
};

// A one-shot timer owned by whoever needs it; cancels itself when destroyed.
class Timer {
 public:
  Timer(EventLoop& loop, std::function<void()> callback);
  ~Timer() { cancel(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void arm(Duration after);
  void arm_at(TimePoint when);
  void cancel();
  bool armed() const { return armed_; }

 private:
  friend class EventLoop;
  EventLoop& loop_;
  std::function<void()> callback_;
  TimePoint when_;
  uint64_t seq_ = 0;   // arming order: timers due at the same time fire in that order
  size_t slot_ = 0;    // index in the loop's heap while armed
  bool armed_ = false;
};

}  // namespace h2mesh::net
