#include "cluster/registry.h"

#include <unistd.h>

#include "cluster/outlier.h"
#include "common/log.h"

namespace h2mesh::cluster {

ClusterRegistry::ClusterRegistry(net::EventLoop& loop, const std::vector<config::Cluster>& clusters)
    : loop_(loop), random_(static_cast<uint64_t>(getpid()) * 0x2545f4914f6cdd1dULL) {
  for (const auto& c : clusters) {
    auto state = std::make_unique<ClusterState>();
    state->settings = c;
    ClusterState* cs = state.get();
    for (const auto& ep : c.endpoints) {
      auto host = std::make_unique<HostState>();
      host->host = Host{ep.address, ep.address.to_string(), ep.weight, true, false};
      HostState* hs = host.get();
      if (c.health_check.enabled) {
        hs->checker = std::make_unique<HealthChecker>(
            loop_, random_, hs->host, c.health_check,
            [this, cs, hs](bool healthy) { on_health_transition(*cs, *hs, healthy); });
      }
      state->hosts.push_back(std::move(host));
    }
    state->version = 1;
    clusters_.emplace(c.name, std::move(state));
  }
}

ClusterRegistry::~ClusterRegistry() = default;

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
