#include "proxy/rate_limit.h"

#include <gtest/gtest.h>

#include <numeric>

#include "common/random.h"

namespace h2mesh::proxy {
namespace {

TimePoint at_ms(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

config::RateLimit limit(double calls_per_second, uint32_t burst) {
  return config::RateLimit{calls_per_second, burst};
}

uint64_t below(Random& random, uint64_t bound) { return random.next() % bound; }

int take_all(TokenBucket& b, TimePoint now, int at_most = 1000000) {
  int n = 0;
  while (n < at_most && b.has_token(now)) {
    b.take();
    ++n;
  }
  return n;
}

// ---- TokenBucket ------------------------------------------------------------------------------

TEST(TokenBucket, StartsFullThenRefillsAtItsRate) {
  TokenBucket b;
  b.start(20, 20 * kToken, at_ms(1000));
  EXPECT_EQ(take_all(b, at_ms(1000)), 20);
  EXPECT_FALSE(b.has_token(at_ms(1049)));
  EXPECT_EQ(take_all(b, at_ms(1050)), 1);  // 20/s: one call per 50 ms, exactly
  EXPECT_EQ(take_all(b, at_ms(1550)), 10);
}

TEST(TokenBucket, NeverHoldsMoreThanItsCapacity) {
  TokenBucket b;
  b.start(20, 5 * kToken, at_ms(0));
  EXPECT_EQ(take_all(b, at_ms(0)), 5);
  // An hour idle: no overflow, and still only the capacity.
  EXPECT_EQ(take_all(b, at_ms(3'600'000)), 5);
}

TEST(TokenBucket, FractionalRateEarnsAWholeTokenOverSeconds) {
  TokenBucket b;
  b.start(0.5, kToken, at_ms(0));
  EXPECT_EQ(take_all(b, at_ms(0)), 1);
  EXPECT_FALSE(b.has_token(at_ms(1999)));
  EXPECT_TRUE(b.has_token(at_ms(2000)));
}

TEST(TokenBucket, ApplyKeepsWhatTheOldRateEarnedThenSwitches) {
  TokenBucket b;
  b.start(10, 10 * kToken, at_ms(0));
  EXPECT_EQ(take_all(b, at_ms(0)), 10);
  // 500 ms at 10/s earned 5; the new share moves 3 more here and doubles the rate.
  b.apply(RateShare{20, 20 * kToken, 3 * kToken}, at_ms(500));
  EXPECT_EQ(b.tokens(at_ms(500)), 8 * kToken);
  EXPECT_EQ(take_all(b, at_ms(500)), 8);
  EXPECT_EQ(take_all(b, at_ms(600)), 2);
}

TEST(TokenBucket, TokensMovedAwayAfterTheyWereSpentLeaveADebt) {
  TokenBucket b;
  b.start(10, 10 * kToken, at_ms(0));
  EXPECT_EQ(take_all(b, at_ms(0)), 10);
  b.apply(RateShare{10, 10 * kToken, -4 * kToken}, at_ms(0));
  EXPECT_EQ(b.tokens(at_ms(0)), -4 * kToken);
  EXPECT_FALSE(b.has_token(at_ms(400)));  // the debt is paid back first
  EXPECT_TRUE(b.has_token(at_ms(500)));
}

TEST(TokenBucket, ApplyCutsTheBalanceToTheNewCapacity) {
  TokenBucket b;
  b.start(10, 10 * kToken, at_ms(0));
  b.apply(RateShare{1, 2 * kToken, 0}, at_ms(0));
  EXPECT_EQ(take_all(b, at_ms(0)), 2);
}

// ---- share_limit --------------------------------------------------------------------------------

Tokens delta_sum(const std::vector<RateShare>& shares) {
  Tokens sum = 0;
  for (const auto& s : shares) sum += s.token_delta;
  return sum;
}

TEST(ShareLimit, InitialShareSplitsRateAndBurstEqually) {
  RateShare s = initial_share(limit(20, 20), 2);
  EXPECT_DOUBLE_EQ(s.calls_per_second, 10);
  EXPECT_EQ(s.capacity, 10 * kToken);
  EXPECT_EQ(s.token_delta, 0);
}

TEST(ShareLimit, AllDemandOnOneWorkerGivesItTheWholeRateAndTheIdleTokens) {
  const WorkerDemand reports[] = {{50, 0}, {0, 10 * kToken}};
  auto shares = share_limit(limit(20, 20), reports);
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_DOUBLE_EQ(shares[0].calls_per_second, 20);
  EXPECT_DOUBLE_EQ(shares[1].calls_per_second, 0);
  // The burst: one token of capacity per worker, the rest to demand.
  EXPECT_EQ(shares[0].capacity, 19 * kToken);
  EXPECT_EQ(shares[1].capacity, 1 * kToken);
  // 10 tokens in all: the idle worker keeps one ready, the busy one gets the other 9.
  EXPECT_EQ(shares[0].token_delta, 9 * kToken);
  EXPECT_EQ(shares[1].token_delta, -9 * kToken);
}

TEST(ShareLimit, NoDemandSplitsEqually) {
  const WorkerDemand reports[] = {{0, 3 * kToken}, {0, 3 * kToken}, {0, 6 * kToken}};
  auto shares = share_limit(limit(30, 12), reports);
  for (const auto& s : shares) {
    EXPECT_DOUBLE_EQ(s.calls_per_second, 10);
    EXPECT_EQ(s.capacity, 4 * kToken);
  }
  EXPECT_EQ(shares[0].token_delta, 1 * kToken);
  EXPECT_EQ(shares[1].token_delta, 1 * kToken);
  EXPECT_EQ(shares[2].token_delta, -2 * kToken);
}

TEST(ShareLimit, RatesFollowDemandInProportion) {
  const WorkerDemand reports[] = {{30, 0}, {10, 0}};
  auto shares = share_limit(limit(100, 100), reports);
  EXPECT_DOUBLE_EQ(shares[0].calls_per_second, 75);
  EXPECT_DOUBLE_EQ(shares[1].calls_per_second, 25);
}

TEST(ShareLimit, FewTokensAllGoWhereTheDemandIs) {
  // One token left for three workers: nobody keeps a ready one, it follows demand.
  const WorkerDemand reports[] = {{0, kToken / 2}, {10, 0}, {0, kToken / 2}};
  auto shares = share_limit(limit(10, 10), reports);
  EXPECT_EQ(shares[0].token_delta, -kToken / 2);
  EXPECT_EQ(shares[1].token_delta, kToken);
  EXPECT_EQ(shares[2].token_delta, -kToken / 2);
}

TEST(ShareLimit, BurstSmallerThanTheWorkersGivesEachOneToken) {
  const WorkerDemand reports[] = {{5, 0}, {0, 0}, {0, 0}, {0, 0}};
  auto shares = share_limit(limit(2, 2), reports);
  for (const auto& s : shares) EXPECT_EQ(s.capacity, kToken);
}

TEST(ShareLimit, NeverCreatesTokensAndCapacitiesAddUpToTheBurst) {
  Random random(42);
  for (int round = 0; round < 2000; ++round) {
    const size_t n = 1 + below(random, 8);
    const uint32_t burst = static_cast<uint32_t>(n + below(random, 100));
    const auto l = limit(1 + static_cast<double>(below(random, 1000)), burst);
    std::vector<WorkerDemand> reports(n);
    for (auto& r : reports) {
      r.calls = below(random, 3) == 0 ? 0 : below(random, 1000);
      // Anything from a debt to a full share of the burst.
      r.tokens = static_cast<Tokens>(below(random, 2 * kToken * burst / n)) - kToken;
    }
    auto shares = share_limit(l, reports);
    ASSERT_EQ(shares.size(), n);
    // Targets are cut to the capacity, which can only remove tokens.
    EXPECT_LE(delta_sum(shares), 0) << "round " << round;
    Tokens capacity = 0;
    double rate = 0;
    for (const auto& s : shares) {
      capacity += s.capacity;
      rate += s.calls_per_second;
      EXPECT_GE(s.capacity, kToken);
    }
    EXPECT_NEAR(static_cast<double>(capacity), static_cast<double>(burst) * kToken,
                static_cast<double>(n));  // rounding: a billionth of a call per worker
    EXPECT_NEAR(rate, l.calls_per_second, 1e-6);
  }
}

// ---- RateLimits: workers and the main thread's rounds in simulated time -----------------------

std::shared_ptr<const config::Config> config_with(std::optional<config::RateLimit> listener_limit,
                                                  std::optional<config::RateLimit> route_limit) {
  auto c = std::make_shared<config::Config>();
  config::Listener& l = c->listeners.emplace_back();
  l.name = "grpc";
  l.rate_limit = listener_limit;
  config::Route& limited = l.routes.emplace_back();
  limited.match = config::RouteMatch{"", "", "/helloworld.Greeter/SayHello"};
  limited.cluster = "greeter";
  limited.rate_limit = route_limit;
  config::Route& open = l.routes.emplace_back();
  open.cluster = "greeter";
  return c;
}

// N workers' RateLimits and the coordinator's round, as the server runs them, on one clock.
struct Simulation {
  Simulation(std::shared_ptr<const config::Config> config, size_t n) : workers(n), stats(n) {
    for (size_t w = 0; w < n; ++w) workers[w].configure(config, n, now, stats[w]);
    specs = rate_limit_specs(*config);
  }
  void round() {
    std::vector<std::vector<WorkerDemand>> reports;
    for (auto& w : workers) reports.push_back(w.collect(now));
    std::vector<std::vector<RateShare>> per_worker(workers.size());
    for (size_t k = 0; k < specs.size(); ++k) {
      std::vector<WorkerDemand> column;
      for (auto& r : reports) column.push_back(r[k]);
      auto shares = share_limit(specs[k].limit, column);
      for (size_t w = 0; w < workers.size(); ++w) per_worker[w].push_back(shares[w]);
    }
    for (size_t w = 0; w < workers.size(); ++w) workers[w].apply(per_worker[w], now);
  }
  // `per_ms` calls every millisecond for `ms` on the workers chosen by `pick`, a round every
  // 100 ms; returns the calls admitted.
  template <typename Pick>
  int run(int ms, int per_ms, Pick pick, size_t route = 0) {
    int admitted = 0;
    for (int t = 0; t < ms; ++t) {
      now += std::chrono::milliseconds(1);
      for (int c = 0; c < per_ms; ++c)
        admitted += workers[pick(t, c)].admit("grpc", route, now) == nullptr;
      if ((t + 1) % 100 == 0) round();
    }
    return admitted;
  }
  TimePoint now = at_ms(1'000'000);
  std::vector<RateLimits> workers;
  std::vector<WorkerStats> stats;
  std::vector<RateLimitSpec> specs;
};

TEST(RateLimits, OneBusyWorkerGetsTheWholeRateOfTheProxy) {
  Simulation sim(config_with(std::nullopt, limit(20, 20)), 2);
  // 1000 calls/s on worker 0 for 5 s. A static split would admit 10 + 10/s.
  const int admitted = sim.run(5000, 1, [](int, int) { return size_t{0}; });
  // At most the burst and the rate; at least the rate once the first round moved the share
  // (the idle worker keeps one token ready).
  EXPECT_LE(admitted, 20 + 20 * 5);
  EXPECT_GE(admitted, 10 + 20 * 5 - 3);
  EXPECT_EQ((sim.stats[0].rate_limited[RateLimitKey{"grpc", 0}]), 5000u - admitted);
}

TEST(RateLimits, DemandSpreadOverWorkersStaysWithinTheLimitOfTheProxy) {
  for (size_t n : {2, 3, 8}) {
    Simulation sim(config_with(std::nullopt, limit(50, 30)), n);
    Random random(n);
    // 2000 calls/s landing on random workers for 4 s.
    const int admitted =
        sim.run(4000, 2, [&](int, int) { return static_cast<size_t>(below(random, n)); });
    EXPECT_LE(admitted, 30 + 50 * 4) << n << " workers";
    EXPECT_GE(admitted, 50 * 4 - 25) << n << " workers";
  }
}

TEST(RateLimits, DemandMovingBetweenWorkersFollowsWithinARound) {
  Simulation sim(config_with(std::nullopt, limit(100, 10)), 4);
  int admitted = 0;
  for (size_t busy = 0; busy < 4; ++busy)
    admitted += sim.run(1000, 1, [&](int, int) { return busy; });
  EXPECT_LE(admitted, 10 + 100 * 4);
  // Each change of worker costs at most about a round of its rate.
  EXPECT_GE(admitted, 100 * 4 - 4 * 12);
}

TEST(RateLimits, IdleWorkerAdmitsItsFirstCallAtOnce) {
  Simulation sim(config_with(std::nullopt, limit(10, 10)), 2);
  // Worker 0 at 100 times the limit: every token goes to it, worker 1 holds none.
  sim.run(1000, 1, [](int, int) { return size_t{0}; });
  // Once the load stops, the tokens that build up are shared so that each worker keeps one ready.
  sim.run(500, 0, [](int, int) { return size_t{0}; });
  EXPECT_EQ(sim.workers[1].admit("grpc", 0, sim.now), nullptr);
}

TEST(RateLimits, RouteWithoutLimitAndUnknownListenerAreNotLimited) {
  Simulation sim(config_with(std::nullopt, limit(1, 1)), 1);
  EXPECT_EQ(sim.run(100, 10, [](int, int) { return size_t{0}; }, /*route=*/1), 1000);
  EXPECT_EQ(sim.workers[0].admit("other", 0, sim.now), nullptr);
}

TEST(RateLimits, ListenerTokenIsNotSpentOnACallItsRouteRefused) {
  RateLimits limits;
  WorkerStats stats;
  limits.configure(config_with(limit(10, 3), limit(1, 1)), 1, at_ms(0), stats);
  EXPECT_EQ(limits.admit("grpc", 0, at_ms(0)), nullptr);
  const auto* refused = limits.admit("grpc", 0, at_ms(0));
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->key.route, 0);
  EXPECT_EQ(RateLimits::refusal_message(*refused),
            "h2mesh: rate limit of route 0 of listener grpc exceeded (1 calls/s, burst 1)");
  // The listener's bucket had 3 and gave 1: two calls on the other route still pass, then its
  // own limit refuses.
  EXPECT_EQ(limits.admit("grpc", 1, at_ms(0)), nullptr);
  EXPECT_EQ(limits.admit("grpc", 1, at_ms(0)), nullptr);
  refused = limits.admit("grpc", 1, at_ms(0));
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->key.route, -1);
  EXPECT_EQ(RateLimits::refusal_message(*refused),
            "h2mesh: rate limit of listener grpc exceeded (10 calls/s, burst 3)");
  EXPECT_EQ((stats.rate_limited[RateLimitKey{"grpc", 0}]), 1u);
  EXPECT_EQ((stats.rate_limited[RateLimitKey{"grpc", -1}]), 1u);
}

TEST(RateLimits, ReloadKeepsUnchangedBucketsAndDropsCountersOfRemovedLimits) {
  RateLimits limits;
  WorkerStats stats;
  limits.configure(config_with(limit(100, 100), limit(1, 2)), 1, at_ms(0), stats);
  for (int i = 0; i < 3; ++i) limits.admit("grpc", 0, at_ms(0));  // 2 admitted, 1 refused
  // Same route limit, listener limit removed: the route's bucket is still empty.
  limits.configure(config_with(std::nullopt, limit(1, 2)), 1, at_ms(0), stats);
  EXPECT_NE(limits.admit("grpc", 0, at_ms(0)), nullptr);
  EXPECT_EQ(stats.rate_limited.count(RateLimitKey{"grpc", -1}), 0u);
  EXPECT_EQ((stats.rate_limited[RateLimitKey{"grpc", 0}]), 2u);
  // Changed settings: a new, full bucket; the counter goes on.
  limits.configure(config_with(std::nullopt, limit(1, 5)), 1, at_ms(0), stats);
  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += limits.admit("grpc", 0, at_ms(0)) == nullptr;
  EXPECT_EQ(admitted, 5);
  EXPECT_EQ((stats.rate_limited[RateLimitKey{"grpc", 0}]), 7u);
}

TEST(RateLimits, SharesForAnotherLimitCountAreIgnored) {
  RateLimits limits;
  WorkerStats stats;
  limits.configure(config_with(std::nullopt, limit(1, 1)), 1, at_ms(0), stats);
  const RateShare two[2] = {{1000, 1000 * kToken, 1000 * kToken}, {}};
  limits.apply(two, at_ms(0));
  EXPECT_EQ(limits.admit("grpc", 0, at_ms(0)), nullptr);
  EXPECT_NE(limits.admit("grpc", 0, at_ms(0)), nullptr);
}

}  // namespace
}  // namespace h2mesh::proxy
