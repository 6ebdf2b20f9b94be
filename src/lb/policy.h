#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "cluster/host_set.h"
#include "common/random.h"

namespace h2mesh::lb {

// What the data path knows at pick time. All spans are indexed like snapshot.hosts.
struct PickContext {
  // In-flight calls this worker has on each host. May be empty for policies that ignore load.
  std::span<const uint32_t> active_requests;
};

// A load-balancing policy bound to one cluster snapshot. Pure logic: no sockets, no clocks, no
// threads. Built and used by one worker thread; rebuilt when a new snapshot arrives.
class Policy {
 public:
  virtual ~Policy() = default;
  // Called once per call attempt on the owning worker thread. Returns an index into the
  // snapshot's hosts, or nullopt when no host may take calls.
  virtual std::optional<size_t> pick(const PickContext& ctx) = 0;
};

// Builds the policy named by snapshot.settings.lb_policy over snapshot.hosts. `random` must
// outlive the policy (it is the worker's generator).
std::unique_ptr<Policy> make_policy(const cluster::ClusterSnapshot& snapshot, Random& random);

// Hosts a policy may pick: available ones (healthy, not ejected); all of them when fewer than
// panic_threshold_percent are available (panic mode).
std::vector<size_t> eligible_hosts(const cluster::ClusterSnapshot& snapshot);

// Algorithm cores, free functions over plain arrays so they can be tested and benchmarked alone.

// Power of two choices: two distinct random candidates, the one with fewer active requests wins
// (ties go to the first draw). `candidates` holds host indexes; returns one of them.
size_t p2c_pick(std::span<const size_t> candidates, std::span<const uint32_t> active,
                Random& random);

// Weighted power of two choices. The two distinct candidates are drawn in proportion to their
// weights, and the one with less load per unit of weight (active / weight) wins; ties go to the
// first draw, so idle hosts get calls in proportion to their weights. `cumulative[i]` is the sum
// of the weights of candidates[0..i] (built once per snapshot); `weights` and `active` are
// indexed by host. No allocation.
size_t weighted_p2c_pick(std::span<const size_t> candidates, std::span<const uint64_t> cumulative,
                         std::span<const uint32_t> weights, std::span<const uint32_t> active,
                         Random& random);

// Earliest-deadline-first weighted round robin. Each host is due every 1/weight; a pick takes the
// host with the earliest deadline (FIFO on ties) and pushes it forward.
class EdfScheduler {
 public:
  // weights[i] > 0 for every candidate; `offset` spreads the start so workers do not move in step.
  EdfScheduler(std::span<const size_t> candidates, std::span<const uint32_t> weights,
               double start_offset);
  size_t next();

 private:
  struct Entry {
    double deadline;
    uint64_t order;
    size_t host;
    double period;
  };
  std::vector<Entry> heap_;
  uint64_t order_ = 0;
  double now_ = 0;
};

}  // namespace h2mesh::lb
