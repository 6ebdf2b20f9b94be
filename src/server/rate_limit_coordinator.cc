#include "server/rate_limit_coordinator.h"

namespace h2mesh::server {

RateLimitCoordinator::RateLimitCoordinator(net::EventLoop& loop,
                                           const std::vector<std::unique_ptr<Worker>>& workers)
    : loop_(loop), workers_(workers), timer_(loop, [this] {
        if (!in_flight_) start_round();
        timer_.arm(kPeriod);
      }) {}

void RateLimitCoordinator::set_config(std::shared_ptr<const config::Config> config) {
  config_ = std::move(config);
  specs_ = proxy::rate_limit_specs(*config_);
  ++round_;  // answers for the old config no longer count
  in_flight_ = false;
  if (specs_.empty()) {
    timer_.cancel();
  } else if (!timer_.armed()) {
    timer_.arm(kPeriod);
  }
}

void RateLimitCoordinator::start_round() {
  ++round_;
  in_flight_ = true;
  round_ok_ = true;
  pending_ = workers_.size();
  reports_.assign(workers_.size(), {});
  net::EventLoop* main = &loop_;
  for (size_t w = 0; w < workers_.size(); ++w) {
    // The reply runs on the worker thread: it only hands the report back to this loop.
    workers_[w]->post_rate_limit_collect(
        config_, [this, main, round = round_, w](std::vector<proxy::WorkerDemand> report) {
          main->post([this, round, w, report = std::move(report)]() mutable {
            on_report(round, w, std::move(report));
          });
        });
  }
}

void RateLimitCoordinator::on_report(uint64_t round, size_t worker,
                                     std::vector<proxy::WorkerDemand> report) {
  if (!in_flight_ || round != round_) return;
  if (report.size() != specs_.size()) round_ok_ = false;  // the worker runs another config
  reports_[worker] = std::move(report);
  if (--pending_ == 0) {
    in_flight_ = false;
    if (round_ok_) finish_round();
  }
}

void RateLimitCoordinator::finish_round() {
  const size_t n = workers_.size();
  std::vector<std::vector<proxy::RateShare>> per_worker(n);
  std::vector<proxy::WorkerDemand> column(n);
  for (size_t k = 0; k < specs_.size(); ++k) {
    for (size_t w = 0; w < n; ++w) column[w] = reports_[w][k];
    std::vector<proxy::RateShare> shares = proxy::share_limit(specs_[k].limit, column);
    for (size_t w = 0; w < n; ++w) per_worker[w].push_back(shares[w]);
  }
  for (size_t w = 0; w < n; ++w)
    workers_[w]->post_rate_limit_shares(config_, std::move(per_worker[w]));
}

}  // namespace h2mesh::server
