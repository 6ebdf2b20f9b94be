#include "cluster/host_set.h"

namespace h2mesh::cluster {

ClusterSnapshotPtr make_static_snapshot(const config::Cluster& cluster, uint64_t version) {
  auto snap = std::make_shared<ClusterSnapshot>();
  snap->settings = cluster;
  snap->version = version;
  snap->hosts.reserve(cluster.endpoints.size());
  for (const auto& ep : cluster.endpoints) {
    snap->hosts.push_back(Host{ep.address, "", ep.address.to_string(), ep.weight, true, false});
  }
  return snap;
}

}  // namespace h2mesh::cluster
