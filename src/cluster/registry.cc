#include "cluster/registry.h"

#include <unistd.h>

#include <algorithm>

#include "cluster/outlier.h"
#include "common/log.h"
#include "net/tls_connector.h"

namespace h2mesh::cluster {

ClusterRegistry::ClusterRegistry(net::EventLoop& loop, const std::vector<config::Cluster>& clusters)
    : loop_(loop), random_(static_cast<uint64_t>(getpid()) * 0x2545f4914f6cdd1dULL) {
  for (const auto& c : clusters) {
    auto state = std::make_unique<ClusterState>();
    state->settings = c;
    ClusterState* cs = state.get();
    for (const auto& ep : c.endpoints) {
      state->hosts.push_back(
          make_host(*cs, Host{ep.address, "", ep.address.to_string(), ep.weight, true, false}));
    }
    state->version = 1;
    clusters_.emplace(c.name, std::move(state));
  }
}

ClusterRegistry::~ClusterRegistry() = default;

std::unique_ptr<ClusterRegistry::HostState> ClusterRegistry::make_host(ClusterState& cluster,
                                                                       const Host& h) {
  auto host = std::make_unique<HostState>();
  host->host = h;
  start_checker(cluster, *host);
  return host;
}

void ClusterRegistry::start_checker(ClusterState& cluster, HostState& host) {
  host.checker.reset();
  if (!cluster.settings.health_check.enabled) return;
  if (!cluster.settings.tls) {
    cluster.tls.reset();
  } else if (!cluster.tls) {
    // Not counted in h2mesh_upstream_tls_handshakes_total, which counts the workers' calls.
    cluster.tls = std::make_shared<net::TlsConnector>(
        *cluster.settings.tls, "cluster " + cluster.settings.name + " (health checks)", nullptr);
  }
  ClusterState* cs = &cluster;
  HostState* hs = &host;
  host.checker = std::make_unique<HealthChecker>(
      loop_, random_, host.host, cluster.settings.health_check,
      [this, cs, hs](bool healthy) { on_health_transition(*cs, *hs, healthy); }, cluster.tls);
}

void ClusterRegistry::set_endpoints(const std::string& cluster_name,
                                    const std::vector<DiscoveredEndpoint>& endpoints) {
  auto it = clusters_.find(cluster_name);
  if (it == clusters_.end()) return;
  ClusterState& cluster = *it->second;
  std::vector<std::unique_ptr<HostState>> next;
  size_t added = 0, updated = 0;
  for (const auto& ep : endpoints) {
    if (!ep.ready) continue;  // discovery decided: terminating ones only as a fallback
    std::string key = ep.address.to_string();
    bool seen = false;
    for (const auto& n : next) seen = seen || n->host.key == key;
    if (seen) continue;  // the same address twice (e.g. in two slices): one host
    auto old = std::find_if(cluster.hosts.begin(), cluster.hosts.end(),
                            [&](const auto& h) { return h && h->host.key == key; });
    if (old != cluster.hosts.end()) {
      if ((*old)->host.weight != ep.weight || (*old)->host.zone != ep.zone) ++updated;
      (*old)->host.weight = ep.weight;
      (*old)->host.zone = ep.zone;
      next.push_back(std::move(*old));
    } else {
      next.push_back(make_host(cluster, Host{ep.address, ep.zone, key, ep.weight, true, false}));
      ++added;
    }
  }
  size_t removed = 0;
  for (const auto& h : cluster.hosts) removed += h != nullptr;
  if (added == 0 && removed == 0 && updated == 0) {
    cluster.hosts = std::move(next);
    return;  // nothing the data path would notice
  }
  if (quiet_) {
    LOG_DEBUG("discovery: cluster %s now has %zu endpoint(s) (+%zu -%zu)", cluster_name.c_str(),
              next.size(), added, removed);
  } else {
    LOG_INFO("discovery: cluster %s now has %zu endpoint(s) (+%zu -%zu)", cluster_name.c_str(),
             next.size(), added, removed);
  }
  // Hosts that left are destroyed here (their health checkers stop); workers drain their pools
  // when the snapshot arrives.
  cluster.hosts = std::move(next);
  publish(cluster);
}

void ClusterRegistry::reconfigure(const std::vector<config::Cluster>& clusters) {
  for (auto it = clusters_.begin(); it != clusters_.end();) {
    bool kept = std::any_of(clusters.begin(), clusters.end(),
                            [&](const config::Cluster& c) { return c.name == it->first; });
    if (kept) {
      ++it;
      continue;
    }
    it->second->hosts.clear();
    publish(*it->second);  // workers drain the pools of a cluster no route names any more
    it = clusters_.erase(it);
  }
  for (const auto& c : clusters) {
    auto [it, inserted] = clusters_.try_emplace(c.name, nullptr);
    if (inserted) it->second = std::make_unique<ClusterState>();
    ClusterState& state = *it->second;
    change_settings(state, c);
    if (c.discovery.type == config::DiscoveryType::Static) {
      std::vector<DiscoveredEndpoint> eps;
      for (const auto& ep : c.endpoints) {
        DiscoveredEndpoint d;
        d.address = ep.address;
        d.weight = ep.weight;
        eps.push_back(std::move(d));
      }
      set_endpoints(c.name, eps);
    }
    publish(state);  // the settings travel with the snapshot
  }
}

void ClusterRegistry::upsert(const config::Cluster& settings) {
  auto [it, inserted] = clusters_.try_emplace(settings.name, nullptr);
  if (inserted) {
    it->second = std::make_unique<ClusterState>();
    it->second->settings = settings;
    publish(*it->second);
    return;
  }
  ClusterState& state = *it->second;
  if (state.settings == settings) return;
  change_settings(state, settings);
  publish(state);
}

void ClusterRegistry::change_settings(ClusterState& state, const config::Cluster& settings) {
  const bool health_changed = !(state.settings.health_check == settings.health_check) ||
                              state.settings.tls != settings.tls;
  if (state.settings.tls != settings.tls) state.tls.reset();  // made again by start_checker
  state.settings = settings;
  if (!health_changed) return;
  // A new health check starts from healthy for every host (a fresh count of successes).
  for (auto& h : state.hosts) {
    h->host.healthy = true;
    h->view.healthy = true;
    start_checker(state, *h);
  }
}

void ClusterRegistry::remove(const std::string& cluster) {
  auto it = clusters_.find(cluster);
  if (it == clusters_.end()) return;
  it->second->hosts.clear();
  publish(*it->second);
  clusters_.erase(it);
}

std::vector<ClusterSnapshotPtr> ClusterRegistry::snapshots() const {
  std::vector<ClusterSnapshotPtr> out;
  for (const auto& [name, c] : clusters_) {
    auto snap = std::make_shared<ClusterSnapshot>();
    snap->settings = c->settings;
    snap->version = c->version;
    for (const auto& h : c->hosts) snap->hosts.push_back(h->host);
    out.push_back(std::move(snap));
  }
  return out;
}

void ClusterRegistry::publish(ClusterState& cluster) {
  ++cluster.version;
  auto snap = std::make_shared<ClusterSnapshot>();
  snap->settings = cluster.settings;
  snap->version = cluster.version;
  for (const auto& h : cluster.hosts) snap->hosts.push_back(h->host);
  if (publish_) publish_(std::move(snap));
}

void ClusterRegistry::on_health_transition(ClusterState& cluster, HostState& host, bool healthy) {
  host.host.healthy = healthy;
  host.view.healthy = healthy;
  host.view.health_transitions++;
  publish(cluster);
}

void ClusterRegistry::report_outlier(const std::string& cluster_name, const std::string& key) {
  auto it = clusters_.find(cluster_name);
  if (it == clusters_.end()) return;
  ClusterState& cluster = *it->second;
  const auto& od = cluster.settings.outlier_detection;
  HostState* host = nullptr;
  size_t ejected = 0;
  for (const auto& h : cluster.hosts) {
    if (h->host.key == key) host = h.get();
    if (h->host.ejected) ++ejected;
  }
  if (!host || host->host.ejected || !od.enabled) return;
  if (!may_eject(ejected, cluster.hosts.size(), od.max_ejection_percent)) {
    LOG_WARN("outlier: %s failing, but %zu of %zu hosts of %s are ejected already (max %u%%)",
             key.c_str(), ejected, cluster.hosts.size(), cluster_name.c_str(),
             od.max_ejection_percent);
    return;
  }
  // A host that stayed well for a whole max_ejection_time starts again from the base time.
  if (host->view.ejections > 0 &&
      loop_.now() - host->unejected_at > std::chrono::duration_cast<Duration>(od.max_ejection_time))
    host->view.ejections = 0;
  host->host.ejected = true;
  host->view.ejected = true;
  host->view.ejections++;
  ejections_total_++;
  Duration d = ejection_duration(host->view.ejections, od);
  LOG_WARN("outlier: ejecting %s from %s for %lldms (ejection #%u)", key.c_str(),
           cluster_name.c_str(),
           static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()),
           host->view.ejections);
  host->unejection = std::make_unique<net::Timer>(loop_, [this, &cluster, host] {
    uneject(cluster, *host);
  });
  host->unejection->arm(d);
  publish(cluster);
}

void ClusterRegistry::uneject(ClusterState& cluster, HostState& host) {
  host.host.ejected = false;
  host.view.ejected = false;
  host.unejected_at = loop_.now();
  LOG_INFO("outlier: %s returns to %s", host.host.key.c_str(), cluster.settings.name.c_str());
  publish(cluster);
}

std::map<std::string, std::map<std::string, HostHealth>> ClusterRegistry::health() const {
  std::map<std::string, std::map<std::string, HostHealth>> out;
  for (const auto& [name, c] : clusters_) {
    for (const auto& h : c->hosts) {
      HostHealth v = h->view;
      if (h->checker) {
        v.health_checks = h->checker->checks();
        v.health_check_failures = h->checker->failures();
        v.last_health_failure = h->checker->last_failure();
      }
      out[name][h->host.key] = v;
    }
  }
  return out;
}

}  // namespace h2mesh::cluster
