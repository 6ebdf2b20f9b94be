#include "net/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "net/simulated_clock.h"

namespace h2mesh::net {
namespace {
class WakeHandler final : public IoHandler {
 public:
  void on_io(uint32_t) override {}
};
WakeHandler g_wake_marker;
}  // namespace

EventLoop::EventLoop(SimulatedClock& clock) : EventLoop() {
  time_ = &clock;
  simulated_ = &clock;
  now_ = clock.now();
  clock.attach(this);
}

EventLoop::EventLoop() : now_(Clock::now()) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0) {
    LOG_ERROR("event loop: cannot create epoll/eventfd: %s", strerror(errno));
    abort();
  }
  add(wakefd_, EPOLLIN, &g_wake_marker);
}

EventLoop::~EventLoop() {
  run_deferred();
  if (simulated_) simulated_->detach(this);
  close(wakefd_);
  close(epfd_);
}

void EventLoop::add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0)
    LOG_ERROR("epoll_ctl add fd %d: %s", fd, strerror(errno));
}

void EventLoop::modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0)
    LOG_ERROR("epoll_ctl mod fd %d: %s", fd, strerror(errno));
}

void EventLoop::remove(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::notify(IoHandler* handler, uint32_t events) {
  for (auto& [h, ev] : notified_) {
    if (h == handler) {
      ev |= events;
      return;
    }
  }
  notified_.emplace_back(handler, events);
}

void EventLoop::cancel_notify(IoHandler* handler) {
  for (auto* list : {&notified_, &delivering_})
    for (auto& entry : *list)
      if (entry.first == handler) entry.first = nullptr;
}

bool EventLoop::deliver_notified() {
  if (notified_.empty()) return false;
  // A handler may notify again (itself or a peer) while being told: that goes to the next
  // iteration, as a fresh epoll event would.
  delivering_.swap(notified_);
  for (auto& [handler, events] : delivering_)
    if (handler) handler->on_io(events);
  delivering_.clear();
  return true;
}

std::optional<TimePoint> EventLoop::next_timer() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.front()->when_;
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t n = write(wakefd_, &one, sizeof(one));
  (void)n;
}

void EventLoop::stop() {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    stop_requested_ = true;
  }
  uint64_t one = 1;
  ssize_t n = write(wakefd_, &one, sizeof(one));
  (void)n;
}

void EventLoop::defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }

void EventLoop::defer_delete(std::unique_ptr<Deletable> object) {
  to_delete_.push_back(std::move(object));
}

int EventLoop::next_timeout_ms() const {
  if (!deferred_.empty() || !to_delete_.empty() || !notified_.empty()) return 0;
  if (timers_.empty()) return -1;
  auto delta = timers_.front()->when_ - read_clock();
  if (delta <= Duration::zero()) return 0;
  // Round up so a timer never fires early.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(delta).count());
}

bool EventLoop::run_timers() {
  bool ran = false;
  while (!timers_.empty() && timers_.front()->when_ <= now_) {
    Timer* t = timers_.front();
    heap_remove(t);
    ran = true;
    t->callback_();  // may re-arm or destroy the timer's owner
  }
  return ran;
}

bool EventLoop::earlier(const Timer* a, const Timer* b) {
  return a->when_ < b->when_ || (a->when_ == b->when_ && a->seq_ < b->seq_);
}

void EventLoop::heap_place(Timer* t, size_t slot) {
  timers_[slot] = t;
  t->slot_ = slot;
}

void EventLoop::sift_up(size_t slot) {
  Timer* t = timers_[slot];
  while (slot > 0) {
    size_t parent = (slot - 1) / 2;
    if (!earlier(t, timers_[parent])) break;
    heap_place(timers_[parent], slot);
    slot = parent;
  }
  heap_place(t, slot);
}

void EventLoop::sift_down(size_t slot) {
  Timer* t = timers_[slot];
  const size_t n = timers_.size();
  for (;;) {
    size_t child = 2 * slot + 1;
    if (child >= n) break;
    if (child + 1 < n && earlier(timers_[child + 1], timers_[child])) ++child;
    if (!earlier(timers_[child], t)) break;
    heap_place(timers_[child], slot);
    slot = child;
  }
  heap_place(t, slot);
}

void EventLoop::heap_insert(Timer* t) {
  t->seq_ = timer_seq_++;
  timers_.push_back(t);  // may throw: the timer is armed only once it is in the heap
  t->armed_ = true;
  sift_up(timers_.size() - 1);
}

void EventLoop::heap_remove(Timer* t) {
  const size_t slot = t->slot_;
  Timer* last = timers_.back();
  timers_.pop_back();
  t->armed_ = false;
  if (last == t) return;
  heap_place(last, slot);
  // The moved timer may belong above or below its new slot.
  if (slot > 0 && earlier(last, timers_[(slot - 1) / 2])) {
    sift_up(slot);
  } else {
    sift_down(slot);
  }
}

void EventLoop::run_deferred() {
  // Deferred work first, deletions last: a callback queued for an object never runs after that
  // object was deleted. Destructors may queue more work; keep going until quiet. The scratch
  // vectors keep their capacity, so a busy loop does not allocate per iteration.
  while (!deferred_.empty() || !to_delete_.empty()) {
    while (!deferred_.empty()) {
      deferred_running_.swap(deferred_);
      for (auto& fn : deferred_running_) fn();
      deferred_running_.clear();
    }
    deleting_.swap(to_delete_);
    deleting_.clear();
  }
}

void EventLoop::drain_posted() {
  uint64_t count;
  ssize_t n = read(wakefd_, &count, sizeof(count));
  (void)n;
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    work.swap(posted_);
    if (stop_requested_) stopping_ = true;
  }
  for (auto& fn : work) fn();
}

bool EventLoop::iterate(int timeout_ms) {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  int n = epoll_wait(epfd_, events, kMaxEvents, timeout_ms);
  if (n < 0) {
    if (errno != EINTR) {
      LOG_ERROR("epoll_wait: %s", strerror(errno));
      stopping_ = true;
    }
    n = 0;
  }
  now_ = read_clock();
  for (int i = 0; i < n; ++i) {
    auto* handler = static_cast<IoHandler*>(events[i].data.ptr);
    if (handler == &g_wake_marker) {
      drain_posted();
    } else {
      handler->on_io(events[i].events);
    }
  }
  bool busy = n > 0;
  busy |= deliver_notified();
  busy |= run_timers();
  busy |= !deferred_.empty() || !to_delete_.empty();
  run_deferred();
  return busy;
}

void EventLoop::run() {
  while (!stopping_) iterate(next_timeout_ms());
  run_deferred();
}

bool EventLoop::run_ready() {
  // Bounded, so that a component that keeps itself busy for ever (a zero-delay timer re-arming
  // itself) fails its test instead of hanging it.
  constexpr int kMaxIterations = 1000000;
  bool any = false;
  for (int i = 0; i < kMaxIterations; ++i) {
    if (!iterate(0)) return any;
    any = true;
  }
  LOG_ERROR("event loop: still busy after %d iterations; giving up", kMaxIterations);
  return any;
}

Timer::Timer(EventLoop& loop, std::function<void()> callback)
    : loop_(loop), callback_(std::move(callback)) {}

void Timer::arm(Duration after) { arm_at(loop_.now() + after); }

void Timer::arm_at(TimePoint when) {
  cancel();
  when_ = when;
  loop_.heap_insert(this);
}

void Timer::cancel() {
  if (armed_) loop_.heap_remove(this);
}

}  // namespace h2mesh::net
