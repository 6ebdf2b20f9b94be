#pragma once

// Local rate limits (`rate_limit: { calls_per_second, burst }` on a route or a listener) for the
// whole proxy without shared state on the data path. Each worker holds a token bucket per limit
// with a share of the rate and of the burst; the main thread (server/rate_limit_coordinator.h)
// collects every worker's demand and tokens each period and hands out new shares in proportion
// to demand, moving unused tokens to the workers that need them. docs/architecture.md gives the
// accuracy bound.

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/time.h"
#include "config/config.h"
#include "proxy/stats.h"

namespace h2mesh::proxy {

// Token amounts in billionths of a call, so that integer rates refill exactly per nanosecond.
using Tokens = int64_t;
constexpr Tokens kToken = 1'000'000'000;

// One worker's part of a limit.
struct RateShare {
  double calls_per_second = 0;
  Tokens capacity = 0;     // most tokens the worker's bucket holds
  Tokens token_delta = 0;  // tokens moved to (> 0) or away from (< 0) the worker's bucket
};

// What a worker reports for one limit at the end of a period.
struct WorkerDemand {
  uint64_t calls = 0;  // calls that asked for a token (admitted or not) since the last report
  Tokens tokens = 0;   // in its bucket now (negative: tokens moved away were already spent)
};

// A token bucket with an injected clock: pure arithmetic, no timers. The refill is computed when
// the bucket is used, from the time passed since the last use.
class TokenBucket {
 public:
  // A full bucket.
  void start(double calls_per_second, Tokens capacity, TimePoint now);
  // Refills up to `now`; true when a whole token is there (take() then spends it).
  bool has_token(TimePoint now);
  void take() { tokens_ -= kToken; }
  Tokens tokens(TimePoint now) {
    refill(now);
    return tokens_;
  }
  // Installs a new share: what was earned at the old rate up to `now` is kept, the delta is
  // added (the balance may go below zero: tokens moved away were spent meanwhile), and the
  // balance is cut to the new capacity.
  void apply(const RateShare& share, TimePoint now);
  double calls_per_second() const { return rate_; }
  Tokens capacity() const { return capacity_; }

 private:
  void refill(TimePoint now);
  double rate_ = 0;
  Tokens capacity_ = 0;
  Tokens tokens_ = 0;
  TimePoint last_{};
};

// Pure: every worker's share of `limit` when no demand is known yet (the start, a new limit):
// equal parts, full buckets.
RateShare initial_share(const config::RateLimit& limit, size_t workers);

// Pure: the next shares of `limit` from each worker's report (one per worker, in worker order).
// Rates follow demand (equal parts when nobody asked); the burst is split the same way, with at
// least one token of capacity per worker; the tokens all workers hold together are moved to
// where demand is, each worker keeping one ready token while the total allows. The deltas sum to
// zero, so no token is created by a redistribution.
std::vector<RateShare> share_limit(const config::RateLimit& limit,
                                   std::span<const WorkerDemand> reports);

// The limits of a config in one fixed order: the main thread and every worker derive the same
// list, so a limit is an index in messages between them: listener by listener, its own limit
// first, then its routes' in route order.
struct RateLimitSpec {
  RateLimitKey key;
  config::RateLimit limit;
};
std::vector<RateLimitSpec> rate_limit_specs(const config::Config& config);

// One worker's buckets. Worker thread only.
class RateLimits {
 public:
  struct Limiter {
    RateLimitKey key;
    config::RateLimit limit;
    TokenBucket bucket;
    uint64_t demand = 0;          // calls that asked since the last collect()
    uint64_t* limited = nullptr;  // the counter in WorkerStats::rate_limited
  };

  // Installs the limits of `config` for a worker among `workers`. Limits whose key and settings
  // stay keep their bucket and share; new ones start with initial_share(). Counters of limits
  // that left are removed from `stats`.
  void configure(std::shared_ptr<const config::Config> config, size_t workers, TimePoint now,
                 WorkerStats& stats);
  const config::Config* config() const { return config_.get(); }

  // Per call, after routing: null when the call may go on; else the limit that refuses it
  // (its counter is counted). A token is taken from the listener's and the route's bucket only
  // when both have one. `route_index` is the route's position in the listener's routes.
  const Limiter* admit(std::string_view listener, size_t route_index, TimePoint now) {
    if (by_listener_.empty()) return nullptr;  // no limits: inline, nothing to look up per call
    return admit_limited(listener, route_index, now);
  }

  // Each limit's demand and tokens, in rate_limit_specs() order; demand restarts from zero.
  std::vector<WorkerDemand> collect(TimePoint now);
  // New shares in rate_limit_specs() order (ignored when the count does not match).
  void apply(std::span<const RateShare> shares, TimePoint now);
  size_t size() const { return limiters_.size(); }
  // The grpc-message of a refused call, naming the limit.
  static std::string refusal_message(const Limiter& limiter);

 private:
  const Limiter* admit_limited(std::string_view listener, size_t route_index, TimePoint now);

  struct ListenerLimits {
    Limiter* listener = nullptr;
    std::vector<Limiter*> routes;  // by route index; null: no limit
  };
  std::shared_ptr<const config::Config> config_;
  std::vector<std::unique_ptr<Limiter>> limiters_;  // rate_limit_specs() order
  // Keys are views of the config's listener names (kept alive by config_).
  std::unordered_map<std::string_view, ListenerLimits> by_listener_;
};

}  // namespace h2mesh::proxy
