#include "lb/policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/host_set.h"
#include "common/random.h"
#include "config/config.h"

namespace h2mesh::lb {
namespace {

constexpr uint64_t kSeed = 0x5eed1234abcdULL;

// A cluster of `weights.size()` endpoints 10.0.0.<i+1>:50051 with the given weights.
// Panic mode is off unless a test turns it on, so health alone decides what is eligible.
config::Cluster make_cluster(config::LbPolicy policy, const std::vector<uint32_t>& weights,
                             uint32_t panic_threshold_percent = 0) {
  config::Cluster c;
  c.name = "backend";
  c.lb_policy = policy;
  c.panic_threshold_percent = panic_threshold_percent;
  for (size_t i = 0; i < weights.size(); ++i) {
    c.endpoints.push_back(
        config::Endpoint{config::SocketAddress{"10.0.0." + std::to_string(i + 1), 50051},
                         weights[i]});
  }
  return c;
}

cluster::ClusterSnapshot make_snapshot(config::LbPolicy policy, const std::vector<uint32_t>& weights,
                                       const std::vector<bool>& healthy = {},
                                       uint32_t panic_threshold_percent = 0) {
  cluster::ClusterSnapshot snap = *cluster::make_static_snapshot(
      make_cluster(policy, weights, panic_threshold_percent), 1);
  for (size_t i = 0; i < healthy.size(); ++i) snap.hosts[i].healthy = healthy[i];
  return snap;
}

std::vector<uint32_t> equal_weights(size_t n) { return std::vector<uint32_t>(n, 1); }

// Picks `n` times; returns how often each host index came out. Fails the test on nullopt.
std::vector<uint64_t> count_picks(Policy& policy, size_t hosts, size_t n,
                                  const PickContext& ctx = {}) {
  std::vector<uint64_t> counts(hosts, 0);
  for (size_t i = 0; i < n; ++i) {
    auto idx = policy.pick(ctx);
    EXPECT_TRUE(idx.has_value());
    if (!idx) break;
    EXPECT_LT(*idx, hosts);
    if (*idx < hosts) counts[*idx]++;
  }
  return counts;
}

// Pearson's chi-square statistic of `counts` against the expected shares `weights`.
double chi_square(const std::vector<uint64_t>& counts, const std::vector<double>& weights) {
  uint64_t total = 0;
  double weight_sum = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    total += counts[i];
    weight_sum += weights[i];
  }
  double chi = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    double expected = static_cast<double>(total) * weights[i] / weight_sum;
    double d = static_cast<double>(counts[i]) - expected;
    chi += d * d / expected;
  }
  return chi;
}

// config::lb_policy_name lives in h2mesh_config, which the lb layer does not link.
const char* name_of(config::LbPolicy p) {
  switch (p) {
    case config::LbPolicy::RoundRobin: return "round_robin";
    case config::LbPolicy::Random: return "random";
    case config::LbPolicy::LeastRequest: return "least_request";
  }
  return "?";
}

const config::LbPolicy kAllPolicies[] = {config::LbPolicy::RoundRobin, config::LbPolicy::Random,
                                         config::LbPolicy::LeastRequest};

// ---- round_robin ------------------------------------------------------------------------------

TEST(RoundRobinPolicy, RoundRobinVisitsEveryHostInTurn) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::RoundRobin, equal_weights(5));
  auto policy = make_policy(snap, random);
  auto first = policy->pick({});
  ASSERT_TRUE(first.has_value());
  size_t expected = *first;
  for (int i = 0; i < 23; ++i) {
    expected = (expected + 1) % 5;
    EXPECT_EQ(policy->pick({}), expected) << "pick " << i + 1;
  }
}

TEST(RoundRobinPolicy, RoundRobinSpreadsExactlyEvenlyOverMultiplesOfHostCount) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::RoundRobin, equal_weights(7));
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 7, 7 * 1000);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(counts[i], 1000u) << "host " << i;
}

TEST(RoundRobinPolicy, RoundRobinStartOffsetDependsOnSeedButNotTheCycle) {
  // Workers start at different hosts (the random offset) so they do not move in lockstep.
  std::map<size_t, int> starts;
  for (uint64_t seed = 1; seed <= 64; ++seed) {
    Random random(seed);
    auto snap = make_snapshot(config::LbPolicy::RoundRobin, equal_weights(4));
    auto policy = make_policy(snap, random);
    starts[*policy->pick({})]++;
  }
  EXPECT_EQ(starts.size(), 4u) << "every host should be some worker's first pick";
}

TEST(RoundRobinPolicy, RoundRobinSkipsUnhealthyHosts) {
  Random random(kSeed);
  auto snap =
      make_snapshot(config::LbPolicy::RoundRobin, equal_weights(5), {true, false, true, false, true});
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 5, 300);
  EXPECT_EQ(counts[0], 100u);
  EXPECT_EQ(counts[1], 0u);
  EXPECT_EQ(counts[2], 100u);
  EXPECT_EQ(counts[3], 0u);
  EXPECT_EQ(counts[4], 100u);
}

TEST(RoundRobinPolicy, WeightedRoundRobinFollowsWeightsExactly) {
  Random random(kSeed);
  const std::vector<uint32_t> weights = {1, 2, 3, 4};
  auto snap = make_snapshot(config::LbPolicy::RoundRobin, weights);
  auto policy = make_policy(snap, random);
  // After any number of picks EDF is within one pick of the ideal share of every host.
  std::vector<uint64_t> counts(4, 0);
  for (int n = 1; n <= 1000; ++n) {
    auto idx = policy->pick({});
    ASSERT_TRUE(idx.has_value());
    counts[*idx]++;
    if (n % 10 == 0) {
      for (size_t i = 0; i < 4; ++i) {
        double ideal = n * weights[i] / 10.0;
        EXPECT_NEAR(static_cast<double>(counts[i]), ideal, 1.0) << "host " << i << " after " << n;
      }
    }
  }
  EXPECT_EQ(counts, (std::vector<uint64_t>{100, 200, 300, 400}));
}

TEST(RoundRobinPolicy, WeightedRoundRobinInterleavesInsteadOfBursting) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::RoundRobin, {1, 1, 4});
  auto policy = make_policy(snap, random);
  // The heavy host gets 4 of every 6 picks, but the light ones are never starved for long.
  size_t since_light = 0, longest_gap = 0;
  for (int i = 0; i < 600; ++i) {
    size_t idx = *policy->pick({});
    if (idx == 2) {
      longest_gap = std::max(longest_gap, ++since_light);
    } else {
      since_light = 0;
    }
  }
  EXPECT_LE(longest_gap, 4u);
}

TEST(RoundRobinPolicy, WeightedRoundRobinNeverPicksUnhealthyHosts) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::RoundRobin, {5, 1, 2, 3}, {false, true, true, true});
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 4, 600);
  EXPECT_EQ(counts[0], 0u);
  EXPECT_EQ(counts[1], 100u);
  EXPECT_EQ(counts[2], 200u);
  EXPECT_EQ(counts[3], 300u);
}

TEST(RoundRobinPolicy, UnequalWeightOnlyOnUnhealthyHostKeepsPlainRotation) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::RoundRobin, {1, 1, 9}, {true, true, false});
  auto policy = make_policy(snap, random);
  auto first = *policy->pick({});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(*policy->pick({}), (first + 1 + i) % 2);
}

// ---- random -----------------------------------------------------------------------------------

TEST(RandomPolicy, RandomSpreadsUniformlyWithFixedSeed) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::Random, equal_weights(4));
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 4, 40000);
  // 3 degrees of freedom: P(chi2 > 16.27) = 0.001 for a fair generator.
  EXPECT_LT(chi_square(counts, {1, 1, 1, 1}), 16.27)
      << counts[0] << " " << counts[1] << " " << counts[2] << " " << counts[3];
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(counts[i] / 40000.0, 0.25, 0.01);
}

TEST(RandomPolicy, WeightedRandomFollowsWeightProportions) {
  Random random(kSeed);
  const std::vector<uint32_t> weights = {1, 3, 6};
  auto snap = make_snapshot(config::LbPolicy::Random, weights);
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 3, 100000);
  EXPECT_LT(chi_square(counts, {1, 3, 6}), 13.82);  // 2 dof, p = 0.001
  EXPECT_NEAR(counts[0] / 100000.0, 0.1, 0.01);
  EXPECT_NEAR(counts[1] / 100000.0, 0.3, 0.01);
  EXPECT_NEAR(counts[2] / 100000.0, 0.6, 0.01);
}

TEST(RandomPolicy, WeightedRandomNeverPicksUnhealthyHosts) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::Random, {1, 1000, 2, 1}, {true, false, true, false});
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 4, 30000);
  EXPECT_EQ(counts[1], 0u);
  EXPECT_EQ(counts[3], 0u);
  EXPECT_NEAR(counts[0] / 30000.0, 1.0 / 3, 0.015);
  EXPECT_NEAR(counts[2] / 30000.0, 2.0 / 3, 0.015);
}

TEST(RandomPolicy, SameSeedGivesSamePicks) {
  auto snap = make_snapshot(config::LbPolicy::Random, {1, 2, 3});
  Random r1(kSeed), r2(kSeed);
  auto p1 = make_policy(snap, r1);
  auto p2 = make_policy(snap, r2);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(p1->pick({}), p2->pick({})) << "pick " << i;
}

// ---- least_request ----------------------------------------------------------------------------

TEST(LeastRequestPolicy, LeastRequestGivesEveryHostPicksWhenIdle) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, equal_weights(5));
  auto policy = make_policy(snap, random);
  std::vector<uint32_t> active(5, 0);
  auto counts = count_picks(*policy, 5, 5000, PickContext{active});
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(counts[i] / 5000.0, 0.2, 0.03) << "host " << i;
}

TEST(LeastRequestPolicy, LeastRequestWithoutLoadInformationPicksUniformly) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, equal_weights(3));
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 3, 30000);
  EXPECT_LT(chi_square(counts, {1, 1, 1}), 13.82);
}

TEST(LeastRequestPolicy, LeastRequestNeverPicksTheMostLoadedHost) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, equal_weights(4));
  auto policy = make_policy(snap, random);
  std::vector<uint32_t> active = {3, 0, 1000, 7};
  auto counts = count_picks(*policy, 4, 10000, PickContext{active});
  EXPECT_EQ(counts[2], 0u);
  // The idle host wins every draw it is part of: it is in half of all pairs.
  EXPECT_NEAR(counts[1] / 10000.0, 0.5, 0.02);
}

TEST(LeastRequestPolicy, LeastRequestTracksChangingLoad) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, equal_weights(2));
  auto policy = make_policy(snap, random);
  std::vector<uint32_t> active = {0, 0};
  // The caller mirrors in-flight calls into `active`; with two hosts P2C always compares both,
  // so the load stays balanced to within one call.
  for (int i = 0; i < 1000; ++i) {
    size_t idx = *policy->pick(PickContext{active});
    active[idx]++;
    ASSERT_LE(std::max(active[0], active[1]) - std::min(active[0], active[1]), 1u) << i;
  }
}

TEST(LeastRequestPolicy, LeastRequestNeverPicksUnhealthyHosts) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, equal_weights(4),
                            {false, true, false, true});
  auto policy = make_policy(snap, random);
  std::vector<uint32_t> active = {0, 9, 0, 9};  // the unhealthy ones look attractive
  auto counts = count_picks(*policy, 4, 2000, PickContext{active});
  EXPECT_EQ(counts[0], 0u);
  EXPECT_EQ(counts[2], 0u);
  EXPECT_GT(counts[1], 0u);
  EXPECT_GT(counts[3], 0u);
}

TEST(LeastRequestPolicy, IdleHostsGetCallsInProportionToWeights) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, {1, 3});
  auto policy = make_policy(snap, random);
  std::vector<uint32_t> active = {0, 0};
  auto counts = count_picks(*policy, 2, 40000, PickContext{active});
  EXPECT_LT(chi_square(counts, {1, 3}), 10.83);  // 1 dof, p = 0.001
  EXPECT_NEAR(counts[0] / 40000.0, 0.25, 0.01);
}

TEST(LeastRequestPolicy, WeightsOneToThreeUnderEqualLoadPerWeightGiveOneToThreeTraffic) {
  // A closed loop: each pick starts a call, and once 20 calls run a random one of them ends
  // (so a host finishes calls in proportion to what it holds). The policy keeps the load per
  // unit of weight level, so the heavy host holds and serves three times the light one's calls.
  Random random(kSeed), finish(kSeed ^ 0xf1);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, {1, 3});
  auto policy = make_policy(snap, random);
  std::vector<uint32_t> active = {0, 0};
  std::vector<uint64_t> picks = {0, 0}, held = {0, 0};
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    size_t idx = *policy->pick(PickContext{active});
    picks[idx]++;
    active[idx]++;
    uint32_t total = active[0] + active[1];
    if (total > 20) active[finish.uniform(total) < active[0] ? 0 : 1]--;
    held[0] += active[0];
    held[1] += active[1];
  }
  EXPECT_NEAR(picks[0] / double(n), 0.25, 0.02) << picks[0] << " " << picks[1];
  EXPECT_NEAR(held[0] / double(held[0] + held[1]), 0.25, 0.02);
}

TEST(LeastRequestPolicy, LoadedHeavyEndpointLosesToIdleLightOne) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, {1, 3});
  auto policy = make_policy(snap, random);
  std::vector<uint32_t> active = {0, 3};
  auto counts = count_picks(*policy, 2, 1000, PickContext{active});
  EXPECT_EQ(counts[1], 0u);
  EXPECT_EQ(counts[0], 1000u);
}

TEST(LeastRequestPolicy, HeavyEndpointWithLessLoadPerWeightWinsDespiteMoreCalls) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, {1, 4});
  auto policy = make_policy(snap, random);
  std::vector<uint32_t> active = {2, 5};  // 2 per unit of weight against 1.25
  auto counts = count_picks(*policy, 2, 1000, PickContext{active});
  EXPECT_EQ(counts[1], 1000u);
}

TEST(LeastRequestPolicy, WeightedWithoutLoadInformationFollowsWeights) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, {1, 3, 6});
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 3, 60000);
  EXPECT_LT(chi_square(counts, {1, 3, 6}), 13.82);  // 2 dof, p = 0.001
}

TEST(LeastRequestPolicy, WeightedNeverPicksUnhealthyHosts) {
  Random random(kSeed);
  auto snap = make_snapshot(config::LbPolicy::LeastRequest, {9, 1, 9, 2}, {false, true, false, true});
  auto policy = make_policy(snap, random);
  std::vector<uint32_t> active = {0, 4, 0, 4};  // the unhealthy ones look attractive
  auto counts = count_picks(*policy, 4, 2000, PickContext{active});
  EXPECT_EQ(counts[0], 0u);
  EXPECT_EQ(counts[2], 0u);
  EXPECT_EQ(counts[3], 2000u);  // 4 / 2 per unit of weight beats 4 / 1
}

// ---- every policy -----------------------------------------------------------------------------

TEST(AnyPolicy, EmptyClusterGivesNoHost) {
  for (auto lb : kAllPolicies) {
    for (uint32_t panic : {0u, 50u, 100u}) {
      Random random(kSeed);
      auto snap = make_snapshot(lb, {}, {}, panic);
      auto policy = make_policy(snap, random);
      EXPECT_EQ(policy->pick({}), std::nullopt) << name_of(lb) << " panic " << panic;
    }
  }
}

TEST(AnyPolicy, AllUnhealthyWithoutPanicModeGivesNoHost) {
  for (auto lb : kAllPolicies) {
    for (const auto& weights : {std::vector<uint32_t>{1, 1, 1}, std::vector<uint32_t>{1, 2, 3}}) {
      Random random(kSeed);
      auto snap = make_snapshot(lb, weights, {false, false, false});
      auto policy = make_policy(snap, random);
      std::vector<uint32_t> active(3, 0);
      EXPECT_EQ(policy->pick({}), std::nullopt) << name_of(lb);
      EXPECT_EQ(policy->pick(PickContext{active}), std::nullopt) << name_of(lb);
    }
  }
}

TEST(AnyPolicy, SingleHostIsAlwaysPicked) {
  for (auto lb : kAllPolicies) {
    Random random(kSeed);
    auto snap = make_snapshot(lb, {7});
    auto policy = make_policy(snap, random);
    std::vector<uint32_t> active = {42};
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ(policy->pick({}), 0u) << name_of(lb);
      EXPECT_EQ(policy->pick(PickContext{active}), 0u) << name_of(lb);
    }
  }
}

TEST(AnyPolicy, SingleHealthyHostAmongUnhealthyIsAlwaysPicked) {
  for (auto lb : kAllPolicies) {
    Random random(kSeed);
    auto snap = make_snapshot(lb, {1, 2, 3}, {false, true, false});
    auto policy = make_policy(snap, random);
    std::vector<uint32_t> active = {0, 100, 0};
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ(policy->pick({}), 1u) << name_of(lb);
      EXPECT_EQ(policy->pick(PickContext{active}), 1u) << name_of(lb);
    }
  }
}

TEST(AnyPolicy, EjectedHostsAreNeverPicked) {
  for (auto lb : kAllPolicies) {
    for (const auto& weights : {std::vector<uint32_t>{1, 1, 1, 1}, std::vector<uint32_t>{1, 2, 3, 4}}) {
      Random random(kSeed);
      auto snap = make_snapshot(lb, weights);
      snap.hosts[2].ejected = true;
      auto policy = make_policy(snap, random);
      std::vector<uint32_t> active = {5, 5, 0, 5};  // the ejected host looks the most attractive
      auto counts = count_picks(*policy, 4, 3000, PickContext{active});
      EXPECT_EQ(counts[2], 0u) << name_of(lb);
      EXPECT_GT(counts[0] + counts[1] + counts[3], 0u) << name_of(lb);
    }
  }
}

// ---- panic mode -------------------------------------------------------------------------------

TEST(PanicMode, AllUnhealthyWithPanicThresholdSpreadsOverEveryHost) {
  for (auto lb : kAllPolicies) {
    Random random(kSeed);
    auto snap = make_snapshot(lb, equal_weights(3), {false, false, false}, 50);
    auto policy = make_policy(snap, random);
    auto counts = count_picks(*policy, 3, 3000);
    for (size_t i = 0; i < 3; ++i) EXPECT_GT(counts[i], 500u) << name_of(lb) << " host " << i;
  }
}

TEST(PanicMode, BelowThresholdRoundRobinVisitsHealthyAndUnhealthyAlike) {
  Random random(kSeed);
  // 1 of 4 available (25%) is below 50%: balance over all four.
  auto snap = make_snapshot(config::LbPolicy::RoundRobin, equal_weights(4),
                            {false, true, false, false}, 50);
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 4, 400);
  EXPECT_EQ(counts, (std::vector<uint64_t>{100, 100, 100, 100}));
}

TEST(PanicMode, AtThresholdOnlyAvailableHostsArePicked) {
  Random random(kSeed);
  // 2 of 4 available is exactly 50%: not below the threshold, so no panic.
  auto snap = make_snapshot(config::LbPolicy::RoundRobin, equal_weights(4),
                            {true, false, true, false}, 50);
  auto policy = make_policy(snap, random);
  auto counts = count_picks(*policy, 4, 400);
  EXPECT_EQ(counts, (std::vector<uint64_t>{200, 0, 200, 0}));
}

TEST(PanicMode, EjectedHostsCountAsUnavailable) {
  auto snap = make_snapshot(config::LbPolicy::Random, equal_weights(4), {}, 50);
  snap.hosts[0].ejected = true;
  snap.hosts[1].ejected = true;
  EXPECT_EQ(eligible_hosts(snap), (std::vector<size_t>{2, 3}));
  snap.hosts[2].healthy = false;
  EXPECT_EQ(eligible_hosts(snap), (std::vector<size_t>{0, 1, 2, 3}));
}

TEST(PanicMode, ZeroThresholdNeverPanics) {
  auto snap = make_snapshot(config::LbPolicy::Random, equal_weights(3), {false, false, true}, 0);
  EXPECT_EQ(eligible_hosts(snap), (std::vector<size_t>{2}));
  snap.hosts[2].healthy = false;
  EXPECT_TRUE(eligible_hosts(snap).empty());
}

TEST(PanicMode, HundredPercentThresholdPanicsOnAnyUnavailableHost) {
  auto snap = make_snapshot(config::LbPolicy::Random, equal_weights(3), {true, true, false}, 100);
  EXPECT_EQ(eligible_hosts(snap), (std::vector<size_t>{0, 1, 2}));
  snap.hosts[2].healthy = true;
  EXPECT_EQ(eligible_hosts(snap), (std::vector<size_t>{0, 1, 2}));
}

// ---- p2c_pick ---------------------------------------------------------------------------------

TEST(P2cPick, LessLoadedOfTwoAlwaysWins) {
  Random random(kSeed);
  const std::vector<size_t> candidates = {0, 1};
  const std::vector<uint32_t> active = {5, 4};
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(p2c_pick(candidates, active, random), 1u);
}

TEST(P2cPick, MostLoadedOfManyIsNeverChosen) {
  for (size_t n = 2; n <= 8; ++n) {
    Random random(kSeed + n);
    std::vector<size_t> candidates;
    std::vector<uint32_t> active;
    for (size_t i = 0; i < n; ++i) {
      candidates.push_back(i);
      active.push_back(static_cast<uint32_t>((i + n / 2) % n));  // a rotation of 0..n-1
    }
    size_t most_loaded = 0;
    for (size_t i = 0; i < n; ++i)
      if (active[i] > active[most_loaded]) most_loaded = i;
    for (int t = 0; t < 5000; ++t)
      ASSERT_NE(p2c_pick(candidates, active, random), most_loaded) << "n=" << n;
  }
}

TEST(P2cPick, WinProbabilityFollowsLoadRank) {
  // With distinct loads, the host of rank r (0 = least loaded) among n wins exactly when it is
  // drawn with a more loaded host: P = 2 (n - 1 - r) / (n (n - 1)). For n = 4: 1/2, 1/3, 1/6, 0.
  Random random(kSeed);
  const std::vector<size_t> candidates = {0, 1, 2, 3};
  const std::vector<uint32_t> active = {30, 10, 0, 20};  // ranks: 3, 1, 0, 2
  std::vector<uint64_t> counts(4, 0);
  const int trials = 60000;
  for (int t = 0; t < trials; ++t) counts[p2c_pick(candidates, active, random)]++;
  EXPECT_EQ(counts[0], 0u);
  EXPECT_NEAR(counts[2] / double(trials), 1.0 / 2, 0.01);
  EXPECT_NEAR(counts[1] / double(trials), 1.0 / 3, 0.01);
  EXPECT_NEAR(counts[3] / double(trials), 1.0 / 6, 0.01);
}

TEST(P2cPick, TiesAreSpreadOverAllCandidates) {
  Random random(kSeed);
  const std::vector<size_t> candidates = {0, 1, 2};
  const std::vector<uint32_t> active = {2, 2, 2};
  std::vector<uint64_t> counts(3, 0);
  for (int t = 0; t < 30000; ++t) counts[p2c_pick(candidates, active, random)]++;
  EXPECT_LT(chi_square(counts, {1, 1, 1}), 13.82);
}

TEST(P2cPick, CandidatesAreHostIndexesIntoTheLoadArray) {
  // Only hosts 1 and 3 are candidates; `active` is indexed by host, not by candidate position.
  Random random(kSeed);
  const std::vector<size_t> candidates = {1, 3};
  const std::vector<uint32_t> active = {0, 8, 0, 2};
  for (int i = 0; i < 200; ++i) ASSERT_EQ(p2c_pick(candidates, active, random), 3u);
}

TEST(P2cPick, SingleCandidateIsReturnedWithoutDrawing) {
  Random random(kSeed), untouched(kSeed);
  const std::vector<size_t> candidates = {2};
  const std::vector<uint32_t> active = {0, 0, 99};
  EXPECT_EQ(p2c_pick(candidates, active, random), 2u);
  EXPECT_EQ(random.next(), untouched.next());
}

// ---- weighted_p2c_pick ------------------------------------------------------------------------

// Running sums of the candidates' weights, as the policy builds them.
std::vector<uint64_t> cumulative_of(const std::vector<size_t>& candidates,
                                    const std::vector<uint32_t>& weights) {
  std::vector<uint64_t> out;
  uint64_t total = 0;
  for (size_t c : candidates) out.push_back(total += weights[c]);
  return out;
}

TEST(WeightedP2cPick, TiesGoToTheFirstDrawWhichFollowsWeights) {
  Random random(kSeed);
  const std::vector<size_t> candidates = {0, 1, 2};
  const std::vector<uint32_t> weights = {1, 3, 6};
  const std::vector<uint32_t> active = {1, 3, 6};  // the same load per unit of weight
  const auto cumulative = cumulative_of(candidates, weights);
  std::vector<uint64_t> counts(3, 0);
  for (int t = 0; t < 60000; ++t)
    counts[weighted_p2c_pick(candidates, cumulative, weights, active, random)]++;
  EXPECT_LT(chi_square(counts, {1, 3, 6}), 13.82);
}

TEST(WeightedP2cPick, SecondDrawIsDistinctAndWeighted) {
  // Loads per unit of weight 0 < 0.5 < 3: a host wins exactly when drawn with a worse one. With
  // weights 1, 2, 3 (total 6) and the second draw over the other two in proportion to weight:
  // P(pair {0,1}) = 1/6 * 2/5 + 2/6 * 1/4 = 0.15, P({0,2}) = 1/6 * 3/5 + 3/6 * 1/3 = 0.2667,
  // P({1,2}) = 2/6 * 3/4 + 3/6 * 2/3 = 0.5833. So host 0 wins 0.4167, host 1 0.5833, host 2 never.
  Random random(kSeed);
  const std::vector<size_t> candidates = {0, 1, 2};
  const std::vector<uint32_t> weights = {1, 2, 3};
  const std::vector<uint32_t> active = {0, 1, 9};
  const auto cumulative = cumulative_of(candidates, weights);
  std::vector<uint64_t> counts(3, 0);
  const int trials = 60000;
  for (int t = 0; t < trials; ++t)
    counts[weighted_p2c_pick(candidates, cumulative, weights, active, random)]++;
  EXPECT_EQ(counts[2], 0u);
  EXPECT_NEAR(counts[0] / double(trials), 0.15 + 0.2667, 0.01);
  EXPECT_NEAR(counts[1] / double(trials), 0.5833, 0.01);
}

TEST(WeightedP2cPick, LoadIsComparedPerUnitOfWeight) {
  Random random(kSeed);
  const std::vector<size_t> candidates = {1, 3};  // host indexes into weights and active
  const std::vector<uint32_t> weights = {7, 1, 7, 10};
  const auto cumulative = cumulative_of(candidates, weights);
  // 2 calls on a weight-1 host are more load than 19 on a weight-10 one, 3 calls less than 31.
  const std::vector<uint32_t> busy_light = {0, 2, 0, 19};
  const std::vector<uint32_t> busy_heavy = {0, 3, 0, 31};
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(weighted_p2c_pick(candidates, cumulative, weights, busy_light, random), 3u);
    ASSERT_EQ(weighted_p2c_pick(candidates, cumulative, weights, busy_heavy, random), 1u);
  }
}

TEST(WeightedP2cPick, SingleCandidateIsReturnedWithoutDrawing) {
  Random random(kSeed), untouched(kSeed);
  const std::vector<size_t> candidates = {2};
  const std::vector<uint32_t> weights = {1, 1, 5};
  const std::vector<uint32_t> active = {0, 0, 99};
  const auto cumulative = cumulative_of(candidates, weights);
  EXPECT_EQ(weighted_p2c_pick(candidates, cumulative, weights, active, random), 2u);
  EXPECT_EQ(random.next(), untouched.next());
}

// ---- EdfScheduler -----------------------------------------------------------------------------

TEST(EdfScheduler, EqualWeightsAlternateInCandidateOrder) {
  const std::vector<size_t> candidates = {0, 1, 2};
  const std::vector<uint32_t> weights = {1, 1, 1};
  EdfScheduler edf(candidates, weights, 0.0);
  for (int round = 0; round < 5; ++round) {
    EXPECT_EQ(edf.next(), 0u);
    EXPECT_EQ(edf.next(), 1u);
    EXPECT_EQ(edf.next(), 2u);
  }
}

TEST(EdfScheduler, PicksAreProportionalToWeights) {
  const std::vector<size_t> candidates = {0, 2};  // host 1 is not a candidate
  const std::vector<uint32_t> weights = {3, 100, 1};
  EdfScheduler edf(candidates, weights, 0.5);
  std::map<size_t, int> counts;
  for (int i = 0; i < 400; ++i) counts[edf.next()]++;
  EXPECT_EQ(counts.count(1), 0u);
  EXPECT_EQ(counts[0], 300);
  EXPECT_EQ(counts[2], 100);
}

TEST(MakePolicy, PolicyIsChosenBySnapshotSettings) {
  // Only least_request reacts to load: with host 0 far more loaded, it is never picked, while
  // round robin still visits it.
  std::vector<uint32_t> active = {100, 0};
  {
    Random random(kSeed);
    auto snap = make_snapshot(config::LbPolicy::LeastRequest, equal_weights(2));
    auto policy = make_policy(snap, random);
    auto counts = count_picks(*policy, 2, 100, PickContext{active});
    EXPECT_EQ(counts[0], 0u);
  }
  {
    Random random(kSeed);
    auto snap = make_snapshot(config::LbPolicy::RoundRobin, equal_weights(2));
    auto policy = make_policy(snap, random);
    auto counts = count_picks(*policy, 2, 100, PickContext{active});
    EXPECT_EQ(counts[0], 50u);
  }
}

}  // namespace
}  // namespace h2mesh::lb
