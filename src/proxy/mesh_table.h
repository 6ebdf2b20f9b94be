#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "cluster/host_set.h"
#include "config/config.h"

namespace h2mesh::proxy {

// One port of one Kubernetes Service as the workers see it in mesh mode. Immutable; built on the
// main thread.
struct MeshRoute {
  std::string cluster;     // "greeter.grpcdemo:50051": its name in /clusters and /metrics
  std::string service;     // "greeter"
  std::string namespace_;  // "grpcdemo"
  cluster::ClusterSnapshotPtr snapshot;  // settings and current hosts (ejections included)
  // Settings of the client connections that dial the Service, and one default route to `cluster`
  // with the Service's deadline bound and retry policy.
  std::shared_ptr<const config::Listener> listener;
};
using MeshRoutePtr = std::shared_ptr<const MeshRoute>;

// Every Service port the mesh knows, by cluster IP:port and by cluster name. Immutable: a change
// makes a new table, which reaches each worker as one pointer; routes that did not change are
// the same objects in both tables.
struct MeshTable {
  std::shared_ptr<const config::Config> config;  // whose mesh block the routes follow
  // SocketAddress::to_string() of a cluster IP and Service port: "10.96.0.10:50051",
  // "[fd00::10]:50051".
  std::unordered_map<std::string, MeshRoutePtr> by_address;
  std::unordered_map<std::string, MeshRoutePtr> by_cluster;
  uint64_t version = 0;

  const MeshRoute* find_address(const std::string& address) const {
    auto it = by_address.find(address);
    return it == by_address.end() ? nullptr : it->second.get();
  }
  const MeshRoute* find_cluster(const std::string& cluster) const {
    auto it = by_cluster.find(cluster);
    return it == by_cluster.end() ? nullptr : it->second.get();
  }
};
using MeshTablePtr = std::shared_ptr<const MeshTable>;

}  // namespace h2mesh::proxy
