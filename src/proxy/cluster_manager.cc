#include "proxy/cluster_manager.h"

#include <algorithm>
#include <type_traits>

#include "common/log.h"

namespace h2mesh::proxy {

namespace {
// How often departed endpoints' entries are looked at: a quarter of the retention (an entry goes
// at most half a retention late), at least every 5 s and no busier than every 10 ms.
Duration sweep_period(Duration retention) {
  return std::clamp<Duration>(retention / 4, std::chrono::milliseconds(10), std::chrono::seconds(5));
}
}  // namespace

ClusterManager::ClusterManager(WorkerContext& ctx)
    : ctx_(ctx),
      sweep_timer_(ctx.loop, [this] { sweep_endpoint_stats(); }),
      mesh_sweep_timer_(ctx.loop, [this] { sweep_idle_mesh_clusters(); }) {}

ClusterManager::~ClusterManager() = default;

void ClusterManager::update(cluster::ClusterSnapshotPtr snapshot) {
  const std::string& name = snapshot->settings.name;
  ClusterState& state = clusters_[name];
  if (!state.stats) state.stats = &ctx_.stats.clusters[name];
  const auto& tls = snapshot->settings.tls;
  if (!tls) {
    state.tls.reset();
  } else if (!state.tls || state.tls->settings() != *tls) {
    static_assert(std::is_same_v<decltype(state.stats->tls_handshakes), net::TlsClientCounters>);
    state.stats->tls = true;
    state.tls = std::make_shared<net::TlsConnector>(*tls, "cluster " + name,
                                                    &state.stats->tls_handshakes);
  }

  std::unordered_map<std::string, std::unique_ptr<ConnPool>> pools;
  for (const cluster::Host& host : snapshot->hosts) {
    if (pools.count(host.key)) continue;  // duplicate address: one pool serves both entries
    auto it = state.pool_by_key.find(host.key);
    if (it != state.pool_by_key.end()) {
      it->second->update_settings(snapshot->settings);
      pools.emplace(host.key, std::move(it->second));
      state.pool_by_key.erase(it);
    } else {
      pools.emplace(host.key,
                    std::make_unique<ConnPool>(ctx_, host, snapshot->settings, *state.stats,
                                               state.stats->endpoints[host.key]));
    }
    // A mesh Service's endpoints are other pods: mesh mTLS when it is on.
    pools.at(host.key)->set_connector(state.tls        ? state.tls
                                      : state.mesh     ? mesh_connector_
                                                       : nullptr);
  }
  // Endpoints that left: no new calls; their calls in flight finish, then the pool goes away.
  for (auto& [key, pool] : state.pool_by_key) {
    ConnPool* raw = pool.get();
    if (state.tls) state.tls->forget(pool->host().address);
    pool->set_active_slot(nullptr);
    state.leaving.push_back(std::move(pool));
    raw->on_drained = [this, name, raw] {
      auto cluster = clusters_.find(name);
      if (cluster == clusters_.end()) return;
      auto& leaving = cluster->second.leaving;
      auto it = std::find_if(leaving.begin(), leaving.end(),
                             [raw](const auto& p) { return p.get() == raw; });
      if (it != leaving.end()) leaving.erase(it);
    };
    raw->drain();
  }
  if (!state.pool_by_key.empty() && !sweep_timer_.armed())
    sweep_timer_.arm(sweep_period(ctx_.stats_retention));
  state.pool_by_key = std::move(pools);

  state.active.assign(snapshot->hosts.size(), 0);
  state.pools.assign(snapshot->hosts.size(), nullptr);
  for (size_t i = 0; i < snapshot->hosts.size(); ++i) {
    ConnPool* pool = state.pool_by_key.at(snapshot->hosts[i].key).get();
    state.pools[i] = pool;
    pool->set_active_slot(&state.active[i]);
  }
  state.policy = lb::make_policy(*snapshot, ctx_.random);
  state.eligible = lb::eligible_hosts(*snapshot);
  state.snapshot = std::move(snapshot);
}

namespace {
// Circuit-breaker limits are enforced per worker: each worker gets its share of the limit.
uint32_t per_worker(uint32_t limit, uint32_t workers) {
  if (limit == 0) return UINT32_MAX;
  return std::max(1u, (limit + workers - 1) / workers);
}
}  // namespace

ClusterManager::ClusterState* ClusterManager::find(const std::string& cluster) {
  auto it = clusters_.find(cluster);
  if (it != clusters_.end()) return &it->second;
  // A mesh Service's first call on this worker: its pools and LB state start now.
  const MeshRoute* route = mesh_ ? mesh_->find_cluster(cluster) : nullptr;
  if (!route) return nullptr;
  clusters_[cluster].mesh = true;  // before update(): its pools connect the mesh's way
  update(route->snapshot);
  ClusterState& state = clusters_.at(cluster);
  state.idle_mark = state.stats->calls.calls_total;
  state.idle_sweeps = 0;
  ++mesh_clusters_;
  arm_mesh_sweep();
  return &state;
}

void ClusterManager::set_mesh(MeshTablePtr table) {
  mesh_ = std::move(table);
  for (auto& [name, state] : clusters_) {
    if (!state.mesh) continue;
    const MeshRoute* route = mesh_ ? mesh_->find_cluster(name) : nullptr;
    if (route) {
      if (route->snapshot != state.snapshot) update(route->snapshot);
      continue;
    }
    if (state.snapshot->hosts.empty()) continue;
    // The Service is gone: no new calls; the ones in flight finish, then the sweep drops it.
    auto empty = std::make_shared<cluster::ClusterSnapshot>();
    empty->settings = state.snapshot->settings;
    empty->version = state.snapshot->version + 1;
    update(std::move(empty));
  }
  arm_mesh_sweep();
}

void ClusterManager::arm_mesh_sweep() {
  if (mesh_clusters_ == 0 || mesh_sweep_timer_.armed() || !mesh_) return;
  mesh_sweep_timer_.arm(std::chrono::duration_cast<Duration>(
      mesh_->config->mesh.cluster_idle_timeout / 2));
}

void ClusterManager::sweep_idle_mesh_clusters() {
  for (auto it = clusters_.begin(); it != clusters_.end();) {
    ClusterState& state = it->second;
    const CallCounters& calls = state.stats->calls;
    if (!state.mesh || calls.in_flight != 0 || calls.calls_total != state.idle_mark) {
      state.idle_mark = calls.calls_total;
      state.idle_sweeps = 0;
      ++it;
      continue;
    }
    if (++state.idle_sweeps < 2) {
      ++it;
      continue;
    }
    // No call for a whole idle timeout: pools close their idle connections as they go.
    const std::string name = it->first;
    const bool gone = !mesh_ || !mesh_->find_cluster(name);
    LOG_DEBUG("mesh: cluster %s idle, its pools are dropped on this worker", name.c_str());
    it = clusters_.erase(it);
    --mesh_clusters_;
    // A Service that still exists keeps its counters (a later call continues them); one that
    // left the mesh takes them along once nothing counts into them any more.
    if (gone) {
      auto stats = ctx_.stats.clusters.find(name);
      if (stats != ctx_.stats.clusters.end()) {
        bool in_use = false;
        for (const auto& [key, ep] : stats->second.endpoints) in_use = in_use || ep.users != 0;
        if (!in_use) ctx_.stats.clusters.erase(stats);
      }
    }
  }
  arm_mesh_sweep();
}

ConnPool* ClusterManager::pick(ClusterState& state, Error* why, const TriedEndpoints* avoid) {
  const std::string& cluster = state.snapshot->settings.name;
  const auto& cb = state.snapshot->settings.circuit_breakers;
  uint32_t workers = std::max(1u, ctx_.worker_count);
  uint32_t max_calls = per_worker(cb.max_calls, workers);
  if (state.stats->calls.in_flight > max_calls) {  // in_flight counts this call too
    state.stats->circuit_breaker_overflow++;
    *why = make_error(ErrorCode::Overloaded,
                      "circuit breaker open: cluster " + cluster + " has " +
                          std::to_string(state.stats->calls.in_flight - 1) +
                          " calls in flight (max_calls " + std::to_string(cb.max_calls) + ")");
    return nullptr;
  }
  uint32_t max_per_endpoint = per_worker(cb.max_calls_per_endpoint, workers);
  lb::PickContext pick_ctx{state.active};
  ConnPool* fallback = nullptr;  // reconnecting, or an endpoint to avoid
  bool full = false;
  // Prefer endpoints that are not reconnecting after a failed connect (nor those a retry
  // avoids); if every choice is, the first one takes the call and fails fast if it must.
  auto consider = [&](ConnPool* pool) {
    if (pool->active_calls() >= max_per_endpoint) {
      full = true;
      return false;
    }
    if (pool->available() && !(avoid && avoid->contains(pool->host().key))) return true;
    if (!fallback) fallback = pool;
    return false;
  };
  // The policy's choice first; a few more draws when it cannot take the call.
  constexpr size_t kDraws = 4;
  for (size_t attempt = 0; attempt < std::min(kDraws, state.eligible.size()); ++attempt) {
    auto idx = state.policy->pick(pick_ctx);
    if (!idx) break;
    if (consider(state.pools[*idx])) return state.pools[*idx];
  }
  // Random draws can keep missing the one endpoint that can take the call: look at every
  // eligible endpoint once, from a random start, before answering with an error.
  if (!state.eligible.empty()) {
    const size_t n = state.eligible.size();
    const size_t start = ctx_.random.uniform(static_cast<uint32_t>(n));
    for (size_t i = 0; i < n; ++i) {
      ConnPool* pool = state.pools[state.eligible[(start + i) % n]];
      if (consider(pool)) return pool;
    }
  }
  if (fallback) return fallback;
  if (full) {
    state.stats->circuit_breaker_overflow++;
    *why = make_error(ErrorCode::Overloaded,
                      "circuit breaker open: every endpoint of " + cluster + " has " +
                          std::to_string(cb.max_calls_per_endpoint) +
                          " calls in flight (max_calls_per_endpoint)");
    return nullptr;
  }
  state.stats->no_endpoint++;
  *why = make_error(ErrorCode::NoHealthyEndpoint, "cluster " + cluster + " has no endpoint");
  return nullptr;
}

void ClusterManager::sweep_endpoint_stats() {
  bool waiting = false;
  for (auto& [name, state] : clusters_)
    waiting |= retire_endpoints(*state.stats, ctx_.loop.now(), ctx_.stats_retention);
  if (waiting) sweep_timer_.arm(sweep_period(ctx_.stats_retention));
}

void ClusterManager::collect_certificates(
    TimePoint now, std::map<std::string, std::vector<net::TlsCertificateInfo>>& out) {
  for (auto& [name, state] : clusters_) {
    if (!state.tls) continue;
    auto certificates = state.tls->certificates(now);
    if (!certificates.empty()) out[name] = std::move(certificates);
  }
}

}  // namespace h2mesh::proxy
