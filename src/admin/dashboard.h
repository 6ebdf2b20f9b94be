#pragma once

// The admin thread's side of the live view: when to collect the workers' counters for
// /live.json, and the history of samples its rates are computed from (admin/live.h).
//
// Collecting posts a closure to every worker (Server::collect), so it happens only while someone
// looks: a request for /live.json starts a one-per-second sampling that goes on for
// kWatchedFor after the last request, then stops and drops the history. Requests arriving
// within a second of the last sample are answered from it: however many pages and `h2mesh top`
// poll, the workers are asked at most about once a second.

#include <functional>
#include <string_view>
#include <vector>

#include "admin/live.h"
#include "net/event_loop.h"
#include "proxy/stats.h"

namespace h2mesh::admin {

class Dashboard {
 public:
  // Asks every worker for its counters and calls back (on the admin loop) with their sum.
  using Collect = std::function<void(std::function<void(proxy::WorkerStats)>)>;
  using Ready = std::function<void(const LiveHistory&)>;

  static constexpr auto kWatchedFor = std::chrono::seconds(60);
  static constexpr auto kInterval = std::chrono::seconds(1);

  // Admin loop thread; `loop` and whatever `collect` uses must outlive this object.
  Dashboard(net::EventLoop& loop, Collect collect);

  // Admin loop thread. Calls `ready` with the history once its newest sample is less than
  // kInterval old: at once, or after a collection. Counts as someone looking.
  void with_fresh(Ready ready);

 private:
  void tick();
  void collect_now();

  net::EventLoop& loop_;
  Collect collect_;
  LiveHistory history_;
  net::Timer ticker_;
  TimePoint last_look_{};
  bool collecting_ = false;
  std::vector<Ready> waiting_;  // requests answered when the collection under way ends
};

// GET / : the dashboard page (src/admin/page/, built into the binary; HTML with its CSS and
// JavaScript inline).
std::string_view dashboard_page();

}  // namespace h2mesh::admin
