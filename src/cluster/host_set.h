#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace h2mesh::cluster {

// One backend address as the data path sees it. Pure data.
struct Host {
  config::SocketAddress address;
  std::string zone;
  std::string key;  // address.to_string(): identity across snapshots (pools and stats are keyed by it)
  uint32_t weight = 1;
  bool healthy = true;   // active health checks clear it
  bool ejected = false;  // outlier detection sets it
  bool available() const { return healthy && !ejected; }
};

// Immutable snapshot of one cluster: its settings and its current hosts. Built on the main thread,
// shared read-only with every worker through std::shared_ptr<const ClusterSnapshot>. A worker
// rebuilds its LB policy when a new snapshot arrives; calls in flight keep the old one alive.
struct ClusterSnapshot {
  config::Cluster settings;  // endpoints field is the configured list; `hosts` is what is live
  std::vector<Host> hosts;
  uint64_t version = 0;
};

using ClusterSnapshotPtr = std::shared_ptr<const ClusterSnapshot>;

// One endpoint as discovery (DNS, Kubernetes) reports it.
struct DiscoveredEndpoint {
  config::SocketAddress address;
  uint32_t weight = 1;
  // Only ready endpoints get new calls. Kubernetes: condition `ready` (never while terminating),
  // or, when no endpoint of the cluster is ready, `serving` and `terminating` (kube-proxy's
  // fallback: pods shutting down still answer better than no pod at all).
  bool ready = true;
  bool serving = true;       // Kubernetes condition `serving`: answers, terminating or not
  bool terminating = false;  // Kubernetes condition `terminating`: being shut down
  std::string zone;          // kept for zone-aware balancing
  std::string name;          // e.g. the pod name, for logs
  bool operator==(const DiscoveredEndpoint&) const = default;
};

// Snapshot of a statically configured cluster.
ClusterSnapshotPtr make_static_snapshot(const config::Cluster& cluster, uint64_t version);

}  // namespace h2mesh::cluster
