#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/host_set.h"
#include "lb/policy.h"
#include "net/event_loop.h"
#include "proxy/conn_pool.h"
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

  // One cluster as this worker sees it. A handle stays valid for the worker's lifetime (a
  // cluster that leaves the config keeps an empty snapshot), so a call looks it up once.
  struct ClusterState;
  // Worker thread. Null when no snapshot of `cluster` has arrived.
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
  };

 private:
  // Drops the stats entries of departed endpoints whose retention passed; runs again while some
  // wait.
  void sweep_endpoint_stats();

  WorkerContext& ctx_;
  std::unordered_map<std::string, ClusterState> clusters_;
  net::Timer sweep_timer_;
};

}  // namespace h2mesh::proxy
