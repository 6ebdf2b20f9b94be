#include "proxy/cluster_manager.h"

#include <algorithm>

#include "common/log.h"

namespace h2mesh::proxy {

ClusterManager::ClusterManager(WorkerContext& ctx) : ctx_(ctx) {}

ClusterManager::~ClusterManager() = default;

void ClusterManager::update(cluster::ClusterSnapshotPtr snapshot) {
  const std::string& name = snapshot->settings.name;
  ClusterState& state = clusters_[name];
  if (!state.stats) state.stats = &ctx_.stats.clusters[name];

  std::unordered_map<std::string, std::unique_ptr<ConnPool>> pools;
  for (const cluster::Host& host : snapshot->hosts) {
    if (pools.count(host.key)) continue;  // duplicate address: one pool serves both entries
    auto it = state.pool_by_key.find(host.key);
    if (it != state.pool_by_key.end()) {
      pools.emplace(host.key, std::move(it->second));
      state.pool_by_key.erase(it);
    } else {
      pools.emplace(host.key,
                    std::make_unique<ConnPool>(ctx_, host, snapshot->settings, *state.stats,
                                               state.stats->endpoints[host.key]));
    }
  }
  // Endpoints that left: no new calls; their calls in flight finish, then the pool goes away.
  for (auto& [key, pool] : state.pool_by_key) {
    ConnPool* raw = pool.get();
    pool->set_active_slot(nullptr);
    state.leaving.push_back(std::move(pool));
    raw->on_drained = [this, name, raw] {
      auto& leaving = clusters_[name].leaving;
      auto it = std::find_if(leaving.begin(), leaving.end(),
                             [raw](const auto& p) { return p.get() == raw; });
      if (it != leaving.end()) leaving.erase(it);
    };
    raw->drain();
  }
  state.pool_by_key = std::move(pools);

  state.active.assign(snapshot->hosts.size(), 0);
  state.pools.assign(snapshot->hosts.size(), nullptr);
  for (size_t i = 0; i < snapshot->hosts.size(); ++i) {
    ConnPool* pool = state.pool_by_key.at(snapshot->hosts[i].key).get();
    state.pools[i] = pool;
    pool->set_active_slot(&state.active[i]);
  }
  state.policy = lb::make_policy(*snapshot, ctx_.random);
  state.snapshot = std::move(snapshot);
}

ConnPool* ClusterManager::pick(const std::string& cluster, Error* why) {
  auto it = clusters_.find(cluster);
  if (it == clusters_.end()) {
    *why = make_error(ErrorCode::NoHealthyEndpoint, "cluster " + cluster + " is not known");
    return nullptr;
  }
  ClusterState& state = it->second;
  lb::PickContext pick_ctx{state.active};
  ConnPool* first = nullptr;
  // Prefer endpoints that are not reconnecting after a failed connect; if every one is, the
  // first choice fails fast with its last connect error.
  for (size_t attempt = 0; attempt < state.pools.size(); ++attempt) {
    auto idx = state.policy->pick(pick_ctx);
    if (!idx) break;
    ConnPool* pool = state.pools[*idx];
    if (pool->available()) return pool;
    if (!first) first = pool;
  }
  if (first) return first;
  state.stats->no_endpoint++;
  *why = make_error(ErrorCode::NoHealthyEndpoint, "cluster " + cluster + " has no endpoint");
  return nullptr;
}

ClusterStats* ClusterManager::stats(const std::string& cluster) {
  auto it = clusters_.find(cluster);
  return it == clusters_.end() ? nullptr : it->second.stats;
}

}  // namespace h2mesh::proxy
