// Load-balancing picks: every lb::Policy's pick() over 4, 64 and 1024 endpoints, the algorithm
// cores alone (P2C, weighted P2C, EDF), the cost of building a policy when a snapshot arrives,
// and the data path's ClusterManager::pick (policy, per-endpoint circuit breaker, pool
// availability) with and without retry avoidance, idle, busy and full. Setup (snapshots,
// policies, pools, in-flight counts) happens before the timed loop; one iteration is one pick.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cluster/host_set.h"
#include "common/random.h"
#include "config/config.h"
#include "lb/policy.h"
#include "net/event_loop.h"
#include "proxy/cluster_manager.h"
#include "proxy/tried_endpoints.h"
#include "proxy/worker_context.h"

namespace h2mesh::lb {
namespace {

constexpr uint64_t kSeed = 0x6d6963726fULL;
constexpr uint32_t kMaxActive = 16;  // in-flight calls per host in the least-request runs

// Which hosts can take calls. Unavailable hosts alternate between unhealthy and ejected.
enum class Health {
  AllUp,
  QuarterDown,  // 1 in 4 unavailable: above the default 50 % panic threshold, so filtered out
  Panic,        // 3 in 4 unavailable: below the threshold, so every host is used again
};

struct Scenario {
  config::LbPolicy policy;
  bool weighted;  // weights 1, 2, 3, 1, 2, 3, ... instead of all 1
  Health health;
};

config::Cluster make_cluster(config::LbPolicy policy, size_t hosts, bool weighted) {
  config::Cluster c;
  c.name = "bench";
  c.lb_policy = policy;
  for (size_t i = 0; i < hosts; ++i) {
    std::string ip = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    c.endpoints.push_back(config::Endpoint{config::SocketAddress{ip, 50051},
                                           weighted ? static_cast<uint32_t>(1 + i % 3) : 1u});
  }
  return c;
}

cluster::ClusterSnapshotPtr make_snapshot(const Scenario& s, size_t hosts) {
  auto snap = std::make_shared<cluster::ClusterSnapshot>(
      *cluster::make_static_snapshot(make_cluster(s.policy, hosts, s.weighted), 1));
  for (size_t i = 0; i < hosts; ++i) {
    bool down = (s.health == Health::QuarterDown && i % 4 == 0) ||
                (s.health == Health::Panic && i % 4 != 3);
    if (!down) continue;
    if (i % 8 < 4)
      snap->hosts[i].healthy = false;
    else
      snap->hosts[i].ejected = true;
  }
  return snap;
}

// Uneven in-flight counts, as least_request sees them on a busy worker.
std::vector<uint32_t> make_load(size_t hosts) {
  Random random(kSeed ^ 0x10ad);
  std::vector<uint32_t> active(hosts);
  for (auto& a : active) a = random.uniform(kMaxActive);
  return active;
}

// ---- lb::Policy::pick ---------------------------------------------------------------------------

void BM_PolicyPick(benchmark::State& state, Scenario scenario) {
  const auto hosts = static_cast<size_t>(state.range(0));
  auto snap = make_snapshot(scenario, hosts);
  Random random(kSeed);
  auto policy = make_policy(*snap, random);
  const std::vector<uint32_t> active = make_load(hosts);
  const PickContext ctx{active};
  if (!policy->pick(ctx)) {
    state.SkipWithError("policy picked nothing");
    return;
  }
  for (auto _ : state) {
    std::optional<size_t> host = policy->pick(ctx);
    benchmark::DoNotOptimize(host);
  }
  state.SetItemsProcessed(state.iterations());
}

// least_request without load information: the data path always passes it, but the policy has
// a fallback (uniform random) for callers that do not.
void BM_PolicyPickWithoutLoad(benchmark::State& state) {
  const auto hosts = static_cast<size_t>(state.range(0));
  auto snap = make_snapshot({config::LbPolicy::LeastRequest, false, Health::AllUp}, hosts);
  Random random(kSeed);
  auto policy = make_policy(*snap, random);
  const PickContext ctx{};
  for (auto _ : state) {
    std::optional<size_t> host = policy->pick(ctx);
    benchmark::DoNotOptimize(host);
  }
  state.SetItemsProcessed(state.iterations());
}

using config::LbPolicy;
constexpr Scenario kRoundRobin{LbPolicy::RoundRobin, false, Health::AllUp};
constexpr Scenario kRoundRobinWeighted{LbPolicy::RoundRobin, true, Health::AllUp};
constexpr Scenario kRoundRobinQuarterDown{LbPolicy::RoundRobin, false, Health::QuarterDown};
constexpr Scenario kRoundRobinPanic{LbPolicy::RoundRobin, false, Health::Panic};
constexpr Scenario kRandom{LbPolicy::Random, false, Health::AllUp};
constexpr Scenario kRandomWeighted{LbPolicy::Random, true, Health::AllUp};
constexpr Scenario kRandomQuarterDown{LbPolicy::Random, false, Health::QuarterDown};
constexpr Scenario kLeastRequest{LbPolicy::LeastRequest, false, Health::AllUp};
constexpr Scenario kLeastRequestWeighted{LbPolicy::LeastRequest, true, Health::AllUp};
constexpr Scenario kLeastRequestQuarterDown{LbPolicy::LeastRequest, false, Health::QuarterDown};

void host_counts(benchmark::internal::Benchmark* b) {
  b->ArgName("hosts")->Arg(4)->Arg(64)->Arg(1024);
}

BENCHMARK_CAPTURE(BM_PolicyPick, round_robin, kRoundRobin)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_PolicyPick, round_robin_weighted, kRoundRobinWeighted)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_PolicyPick, round_robin_quarter_down, kRoundRobinQuarterDown)
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_PolicyPick, round_robin_panic, kRoundRobinPanic)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_PolicyPick, random, kRandom)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_PolicyPick, random_weighted, kRandomWeighted)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_PolicyPick, random_quarter_down, kRandomQuarterDown)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_PolicyPick, least_request, kLeastRequest)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_PolicyPick, least_request_weighted, kLeastRequestWeighted)
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_PolicyPick, least_request_quarter_down, kLeastRequestQuarterDown)
    ->Apply(host_counts);
BENCHMARK(BM_PolicyPickWithoutLoad)->Apply(host_counts);

// ---- algorithm cores ----------------------------------------------------------------------------

void BM_P2cPick(benchmark::State& state) {
  const auto hosts = static_cast<size_t>(state.range(0));
  std::vector<size_t> candidates(hosts);
  for (size_t i = 0; i < hosts; ++i) candidates[i] = i;
  const std::vector<uint32_t> active = make_load(hosts);
  Random random(kSeed);
  for (auto _ : state) {
    size_t host = p2c_pick(candidates, active, random);
    benchmark::DoNotOptimize(host);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_P2cPick)->Apply(host_counts);

void BM_WeightedP2cPick(benchmark::State& state) {
  const auto hosts = static_cast<size_t>(state.range(0));
  std::vector<size_t> candidates(hosts);
  std::vector<uint32_t> weights(hosts);
  std::vector<uint64_t> cumulative(hosts);
  uint64_t total = 0;
  for (size_t i = 0; i < hosts; ++i) {
    candidates[i] = i;
    weights[i] = static_cast<uint32_t>(1 + i % 3);
    cumulative[i] = total += weights[i];
  }
  const std::vector<uint32_t> active = make_load(hosts);
  Random random(kSeed);
  for (auto _ : state) {
    size_t host = weighted_p2c_pick(candidates, cumulative, weights, active, random);
    benchmark::DoNotOptimize(host);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WeightedP2cPick)->Apply(host_counts);

void BM_EdfNext(benchmark::State& state) {
  const auto hosts = static_cast<size_t>(state.range(0));
  std::vector<size_t> candidates(hosts);
  std::vector<uint32_t> weights(hosts);
  for (size_t i = 0; i < hosts; ++i) {
    candidates[i] = i;
    weights[i] = static_cast<uint32_t>(1 + i % 3);
  }
  EdfScheduler edf(candidates, weights, 0.5);
  for (auto _ : state) {
    size_t host = edf.next();
    benchmark::DoNotOptimize(host);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EdfNext)->Apply(host_counts);

// ---- building a policy (once per worker for every snapshot) -------------------------------------

void BM_MakePolicy(benchmark::State& state, Scenario scenario) {
  const auto hosts = static_cast<size_t>(state.range(0));
  auto snap = make_snapshot(scenario, hosts);
  Random random(kSeed);
  for (auto _ : state) {
    std::unique_ptr<Policy> policy = make_policy(*snap, random);
    benchmark::DoNotOptimize(policy.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_MakePolicy, round_robin, kRoundRobin)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_MakePolicy, round_robin_weighted, kRoundRobinWeighted)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_MakePolicy, random_weighted, kRandomWeighted)->Apply(host_counts);
BENCHMARK_CAPTURE(BM_MakePolicy, least_request_quarter_down, kLeastRequestQuarterDown)
    ->Apply(host_counts);

// ---- the data path's pick: policy + circuit breakers + pool availability + retry avoidance ------

// In-flight calls on the pools, against max_calls_per_endpoint = kPerEndpointLimit.
enum class Load {
  Idle,     // no call in flight
  Busy,     // 0..limit-1 calls on each pool, and 1 in 4 pools at the limit (skipped)
  AllFull,  // every pool at the limit: the pick fails with Overloaded
};
constexpr uint32_t kPerEndpointLimit = 4;

struct DataPathCase {
  Scenario scenario;
  Load load;
  bool avoid_one;  // a retry: avoid the endpoint of the failed first attempt
};

// A worker's ClusterManager with one cluster and its pools (no connection is opened: pools
// connect only when a call is attached; in-flight calls are only counted).
class WorkerFixture {
 public:
  WorkerFixture(const Scenario& scenario, size_t hosts, Load load)
      : ctx_(loop_, kSeed, config::Buffers{}), manager_(ctx_) {
    ctx_.clusters = &manager_;
    auto snap = std::make_shared<cluster::ClusterSnapshot>(*make_snapshot(scenario, hosts));
    snap->settings.circuit_breakers.max_calls_per_endpoint = kPerEndpointLimit;
    name_ = snap->settings.name;
    first_key_ = snap->hosts.front().key;
    manager_.update(std::move(snap));
    Random random(kSeed ^ 0x10ad);
    for (size_t i = 0; i < hosts; ++i) {
      uint32_t calls = 0;
      if (load == Load::AllFull || (load == Load::Busy && i % 4 == 1))
        calls = kPerEndpointLimit;
      else if (load == Load::Busy)
        calls = random.uniform(kPerEndpointLimit);
      for (uint32_t c = 0; c < calls; ++c) cluster()->pools[i]->call_started();
    }
  }
  proxy::ClusterManager& manager() { return manager_; }
  proxy::ClusterManager::ClusterState* cluster() { return manager_.find(name_); }
  const std::string& first_key() const { return first_key_; }

 private:
  net::EventLoop loop_;
  proxy::WorkerContext ctx_;
  proxy::ClusterManager manager_;
  std::string name_;
  std::string first_key_;
};

void BM_ClusterManagerPick(benchmark::State& state, DataPathCase c) {
  const auto hosts = static_cast<size_t>(state.range(0));
  WorkerFixture worker(c.scenario, hosts, c.load);
  proxy::ClusterManager::ClusterState* cluster = worker.cluster();
  proxy::TriedEndpoints tried;
  tried.add(worker.first_key());
  const proxy::TriedEndpoints* avoid = c.avoid_one ? &tried : nullptr;
  const bool expect_pool = c.load != Load::AllFull;
  Error why;
  if (!cluster || (worker.manager().pick(*cluster, &why, avoid) != nullptr) != expect_pool) {
    state.SkipWithError("the cluster manager's pick does not do what the case expects");
    return;
  }
  for (auto _ : state) {
    proxy::ConnPool* pool = worker.manager().pick(*cluster, &why, avoid);
    benchmark::DoNotOptimize(pool);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(BM_ClusterManagerPick, round_robin, DataPathCase{kRoundRobin, Load::Idle, false})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, round_robin_avoiding_one,
                  DataPathCase{kRoundRobin, Load::Idle, true})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, round_robin_busy,
                  DataPathCase{kRoundRobin, Load::Busy, false})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, round_robin_busy_avoiding_one,
                  DataPathCase{kRoundRobin, Load::Busy, true})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, round_robin_all_full,
                  DataPathCase{kRoundRobin, Load::AllFull, false})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, random, DataPathCase{kRandom, Load::Idle, false})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, random_avoiding_one,
                  DataPathCase{kRandom, Load::Idle, true})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, random_busy_avoiding_one,
                  DataPathCase{kRandom, Load::Busy, true})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, least_request,
                  DataPathCase{kLeastRequest, Load::Idle, false})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, least_request_avoiding_one,
                  DataPathCase{kLeastRequest, Load::Idle, true})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, least_request_busy,
                  DataPathCase{kLeastRequest, Load::Busy, false})
    ->Apply(host_counts);
BENCHMARK_CAPTURE(BM_ClusterManagerPick, least_request_busy_avoiding_one,
                  DataPathCase{kLeastRequest, Load::Busy, true})
    ->Apply(host_counts);

}  // namespace
}  // namespace h2mesh::lb
