#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.h"
#include "net/event_loop.h"
#include "proxy/rate_limit.h"
#include "server/worker.h"

namespace h2mesh::server {

// Shares each rate limit of the config among the workers (main thread). Every period it asks
// every worker for its demand and tokens per limit; when the last one answered it computes the
// new shares (proxy::share_limit) and posts each worker its own. Two posts per worker per
// period, none per call; nothing runs while the config has no rate limit.
class RateLimitCoordinator {
 public:
  static constexpr std::chrono::milliseconds kPeriod{100};

  // `workers` is the server's list; it outlives the coordinator and does not change size.
  RateLimitCoordinator(net::EventLoop& loop, const std::vector<std::unique_ptr<Worker>>& workers);

  // Main thread: at start and after each reload, once `config` was posted to every worker.
  // A round still in flight for the previous config is dropped.
  void set_config(std::shared_ptr<const config::Config> config);

 private:
  void start_round();
  void on_report(uint64_t round, size_t worker, std::vector<proxy::WorkerDemand> report);
  void finish_round();

  net::EventLoop& loop_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
  std::shared_ptr<const config::Config> config_;
  std::vector<proxy::RateLimitSpec> specs_;
  net::Timer timer_;
  uint64_t round_ = 0;  // the round in flight, or the last one
  bool in_flight_ = false;
  bool round_ok_ = true;  // every answer so far was for the current config
  size_t pending_ = 0;    // answers still to come
  std::vector<std::vector<proxy::WorkerDemand>> reports_;  // by worker, then by limit
};

}  // namespace h2mesh::server
