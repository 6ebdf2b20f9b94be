#include "lb/policy.h"

#include <algorithm>
#include <vector>

namespace h2mesh::lb {
namespace {

bool heap_later(const auto& a, const auto& b) {
  // std heap is a max-heap: "less" means "later deadline", so the earliest sits on top.
  if (a.deadline != b.deadline) return a.deadline > b.deadline;
  return a.order > b.order;
}

}  // namespace

std::vector<size_t> eligible_hosts(const cluster::ClusterSnapshot& snap) {
  std::vector<size_t> out;
  for (size_t i = 0; i < snap.hosts.size(); ++i)
    if (snap.hosts[i].available()) out.push_back(i);
  // Panic mode: with too few hosts left, spreading over all of them beats crushing the few.
  if (out.size() * 100 < snap.hosts.size() * snap.settings.panic_threshold_percent) {
    out.resize(snap.hosts.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = i;
  }
  return out;
}

namespace {

bool all_weights_equal(const cluster::ClusterSnapshot& snap, std::span<const size_t> idx) {
  for (size_t i : idx)
    if (snap.hosts[i].weight != snap.hosts[idx[0]].weight) return false;
  return true;
}

class RoundRobin final : public Policy {
 public:
  RoundRobin(const cluster::ClusterSnapshot& snap, Random& random)
      : hosts_(eligible_hosts(snap)) {
    if (hosts_.empty()) return;
    if (!all_weights_equal(snap, hosts_)) {
      std::vector<uint32_t> weights(snap.hosts.size());
      for (size_t i = 0; i < snap.hosts.size(); ++i) weights[i] = snap.hosts[i].weight;
      edf_.emplace(hosts_, weights, random.unit());
    } else {
      next_ = random.uniform(static_cast<uint32_t>(hosts_.size()));
    }
  }

  std::optional<size_t> pick(const PickContext&) override {
    if (hosts_.empty()) return std::nullopt;
    if (edf_) return edf_->next();
    size_t host = hosts_[next_];
    if (++next_ == hosts_.size()) next_ = 0;
    return host;
  }

 private:
  std::vector<size_t> hosts_;
  std::optional<EdfScheduler> edf_;
  size_t next_ = 0;
};

class RandomPick final : public Policy {
 public:
  RandomPick(const cluster::ClusterSnapshot& snap, Random& random)
      : hosts_(eligible_hosts(snap)), random_(random) {
    if (!hosts_.empty() && !all_weights_equal(snap, hosts_)) {
      uint64_t total = 0;
      for (size_t i : hosts_) {
        total += snap.hosts[i].weight;
        cumulative_.push_back(total);
      }
    }
  }

  std::optional<size_t> pick(const PickContext&) override {
    if (hosts_.empty()) return std::nullopt;
    if (cumulative_.empty()) return hosts_[random_.uniform(static_cast<uint32_t>(hosts_.size()))];
    uint64_t r = random_.uniform(static_cast<uint32_t>(cumulative_.back()));
    auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), r);
    return hosts_[static_cast<size_t>(it - cumulative_.begin())];
  }

 private:
  std::vector<size_t> hosts_;
  std::vector<uint64_t> cumulative_;
  Random& random_;
};

class LeastRequest final : public Policy {
 public:
  LeastRequest(const cluster::ClusterSnapshot& snap, Random& random)
      : hosts_(eligible_hosts(snap)), random_(random) {
    // With equal weights the plain P2C draws uniformly and compares raw counts, which is the
    // same choice at a lower cost.
    if (hosts_.empty() || all_weights_equal(snap, hosts_)) return;
    weights_.resize(snap.hosts.size());
    for (size_t i = 0; i < snap.hosts.size(); ++i) weights_[i] = snap.hosts[i].weight;
    uint64_t total = 0;
    for (size_t i : hosts_) {
      total += weights_[i];
      cumulative_.push_back(total);
    }
  }

  std::optional<size_t> pick(const PickContext& ctx) override {
    if (hosts_.empty()) return std::nullopt;
    if (cumulative_.empty()) {
      if (ctx.active_requests.empty())
        return hosts_[random_.uniform(static_cast<uint32_t>(hosts_.size()))];
      return p2c_pick(hosts_, ctx.active_requests, random_);
    }
    if (ctx.active_requests.empty()) {
      // No load to compare: a weighted random draw.
      uint64_t r = random_.uniform(static_cast<uint32_t>(cumulative_.back()));
      auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), r);
      return hosts_[static_cast<size_t>(it - cumulative_.begin())];
    }
    return weighted_p2c_pick(hosts_, cumulative_, weights_, ctx.active_requests, random_);
  }

 private:
  std::vector<size_t> hosts_;
  std::vector<uint32_t> weights_;      // by host index; empty when all weights are equal
  std::vector<uint64_t> cumulative_;   // running sums of the weights of hosts_
  Random& random_;
};

}  // namespace

size_t p2c_pick(std::span<const size_t> candidates, std::span<const uint32_t> active,
                Random& random) {
  const auto n = static_cast<uint32_t>(candidates.size());
  if (n == 1) return candidates[0];
  uint32_t a = random.uniform(n);
  uint32_t b = random.uniform(n - 1);
  if (b >= a) ++b;  // distinct second draw
  size_t ha = candidates[a], hb = candidates[b];
  return active[hb] < active[ha] ? hb : ha;
}

size_t weighted_p2c_pick(std::span<const size_t> candidates, std::span<const uint64_t> cumulative,
                         std::span<const uint32_t> weights, std::span<const uint32_t> active,
                         Random& random) {
  const size_t n = candidates.size();
  if (n == 1) return candidates[0];
  const uint64_t total = cumulative[n - 1];
  // First draw: position `a` with probability weight(a) / total.
  const uint64_t ra = random.uniform(static_cast<uint32_t>(total));
  const size_t a = static_cast<size_t>(
      std::upper_bound(cumulative.begin(), cumulative.end(), ra) - cumulative.begin());
  // Second draw over the others in proportion to weight: a point on the line with a's segment
  // cut out, shifted past the cut when it lands after it. Exact, and no rejection loop.
  const uint64_t a_start = a == 0 ? 0 : cumulative[a - 1];
  const uint64_t a_weight = cumulative[a] - a_start;
  uint64_t rb = random.uniform(static_cast<uint32_t>(total - a_weight));
  if (rb >= a_start) rb += a_weight;
  const size_t b = static_cast<size_t>(
      std::upper_bound(cumulative.begin(), cumulative.end(), rb) - cumulative.begin());
  const size_t ha = candidates[a], hb = candidates[b];
  // active[b] / weight[b] < active[a] / weight[a], without division.
  const uint64_t load_b = static_cast<uint64_t>(active[hb]) * weights[ha];
  const uint64_t load_a = static_cast<uint64_t>(active[ha]) * weights[hb];
  return load_b < load_a ? hb : ha;
}

EdfScheduler::EdfScheduler(std::span<const size_t> candidates, std::span<const uint32_t> weights,
                           double start_offset) {
  heap_.reserve(candidates.size());
  for (size_t host : candidates) {
    double period = 1.0 / weights[host];
    heap_.push_back(Entry{period * start_offset, order_++, host, period});
  }
  std::make_heap(heap_.begin(), heap_.end(), [](const Entry& a, const Entry& b) { return heap_later(a, b); });
}

size_t EdfScheduler::next() {
  auto later = [](const Entry& a, const Entry& b) { return heap_later(a, b); };
  std::pop_heap(heap_.begin(), heap_.end(), later);
  Entry& e = heap_.back();
  now_ = e.deadline;
  size_t host = e.host;
  e.deadline = now_ + e.period;
  e.order = order_++;
  std::push_heap(heap_.begin(), heap_.end(), later);
  return host;
}

std::unique_ptr<Policy> make_policy(const cluster::ClusterSnapshot& snapshot, Random& random) {
  switch (snapshot.settings.lb_policy) {
    case config::LbPolicy::RoundRobin: return std::make_unique<RoundRobin>(snapshot, random);
    case config::LbPolicy::Random: return std::make_unique<RandomPick>(snapshot, random);
    case config::LbPolicy::LeastRequest: return std::make_unique<LeastRequest>(snapshot, random);
  }
  return std::make_unique<RoundRobin>(snapshot, random);
}

}  // namespace h2mesh::lb
