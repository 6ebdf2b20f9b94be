#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/host_set.h"
#include "lb/policy.h"
#include "net/event_loop.h"
#include "net/tls_connector.h"
#include "proxy/conn_pool.h"
#include "proxy/mesh_table.h"
#include "proxy/retry.h"
#include "proxy/tried_endpoints.h"
#include "proxy/worker_context.h"

namespace h2mesh::proxy {

// A worker's view of every cluster: the current snapshot, the LB policy built from it, and one
// ConnPool per endpoint. Snapshots arrive from the main thread (via EventLoop::post); pools of
// endpoints that stay are kept, pools of endpoints that left drain and then go away, and their
// stats entries follow ctx.stats_retention later (retire_endpoints in proxy/stats.h).
class ClusterManager {
 public:
  explicit ClusterManager(WorkerContext& ctx);
  ~ClusterManager();

  // Worker thread. Installs a new snapshot of one cluster.
  void update(cluster::ClusterSnapshotPtr snapshot);

  // Worker thread. The mesh's Services (mesh mode). Their clusters are not made here but on
  // their first call (find), so that Services nobody calls cost nothing; a new table updates
  // the ones that exist, and those without calls for mesh.cluster_idle_timeout are dropped.
  void set_mesh(MeshTablePtr table);
  const MeshTable* mesh() const { return mesh_.get(); }
  // Worker thread, before the first call. How the pools of mesh Service clusters connect (mesh
  // mTLS, proxy/mesh_connector.h); null: the worker's plain connector.
  void set_mesh_connector(std::shared_ptr<net::Connector> connector) {
    mesh_connector_ = std::move(connector);
  }

  // One cluster as this worker sees it. A handle stays valid while a call uses it: a cluster that
  // leaves the config keeps an empty snapshot for the worker's lifetime, and a mesh Service's
  // cluster goes only when no call is in flight.
  struct ClusterState;
  // Worker thread. Null when no snapshot of `cluster` has arrived and the mesh has no such
  // Service.
  ClusterState* find(const std::string& cluster);
  static ClusterStats* stats(ClusterState& cluster) { return cluster.stats; }

  // Worker thread. Chooses the endpoint of one call attempt, avoiding those in `avoid` (the
  // endpoints of the call's failed attempts; may be null) while another one can take the call.
  // Returns null and sets *why when the cluster has no endpoint or its circuit breakers are open
  // (ErrorCode::Overloaded).
  ConnPool* pick(ClusterState& cluster, Error* why, const TriedEndpoints* avoid = nullptr);

  struct ClusterState {
    cluster::ClusterSnapshotPtr snapshot;
    std::unique_ptr<lb::Policy> policy;
    std::vector<size_t> eligible;   // hosts the policy may pick (lb::eligible_hosts)
    std::vector<uint32_t> active;   // in-flight calls per host index (for least_request)
    std::vector<ConnPool*> pools;   // per host index
    std::unordered_map<std::string, std::unique_ptr<ConnPool>> pool_by_key;
    std::vector<std::unique_ptr<ConnPool>> leaving;  // drained pools of removed hosts
    ClusterStats* stats = nullptr;
    // Clusters with `tls`: how their pools connect. Replaced when a reload changes the TLS
    // settings; pools that leave keep the one they had until they are gone.
    std::shared_ptr<net::TlsConnector> tls;
    bool mesh = false;          // made from the mesh table on a first call
    uint64_t idle_mark = 0;     // calls_total at the last idle sweep
    uint32_t idle_sweeps = 0;   // sweeps in a row without a call
  };
  size_t mesh_cluster_count() const { return mesh_clusters_; }

  // The client certificate of each cluster with `tls.cert` whose files are loaded, by cluster
  // name (for the expiry metric).
  void collect_certificates(TimePoint now,
                            std::map<std::string, std::vector<net::TlsCertificateInfo>>& out);

 private:
  // Drops the stats entries of departed endpoints whose retention passed; runs again while some
  // wait.
  void sweep_endpoint_stats();
  // Drops the mesh clusters that had no call for two sweeps (a sweep every half of
  // mesh.cluster_idle_timeout); runs again while some exist.
  void sweep_idle_mesh_clusters();
  void arm_mesh_sweep();

  WorkerContext& ctx_;
  std::unordered_map<std::string, ClusterState> clusters_;
  net::Timer sweep_timer_;
  MeshTablePtr mesh_;
  std::shared_ptr<net::Connector> mesh_connector_;
  size_t mesh_clusters_ = 0;
  net::Timer mesh_sweep_timer_;
};

}  // namespace h2mesh::proxy
