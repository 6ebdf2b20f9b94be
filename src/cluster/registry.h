#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/health_checker.h"
#include "cluster/host_set.h"
#include "common/random.h"
#include "net/event_loop.h"

namespace h2mesh::cluster {

// What the admin server shows of one endpoint's health.
struct HostHealth {
  bool healthy = true;
  bool ejected = false;
  uint32_t ejections = 0;            // times ejected so far
  uint64_t health_checks = 0;
  uint64_t health_check_failures = 0;
  uint64_t health_transitions = 0;   // healthy <-> unhealthy
  std::string last_health_failure;
};

// The main thread's authority on cluster membership and health. It owns each cluster's host
// list, the active health checkers (one per endpoint, not per worker) and outlier ejections,
// and publishes a new immutable snapshot whenever any of them changes.
class ClusterRegistry {
 public:
  using Publish = std::function<void(ClusterSnapshotPtr)>;

  ClusterRegistry(net::EventLoop& loop, const std::vector<config::Cluster>& clusters);
  ~ClusterRegistry();

  // Current snapshots, to seed workers before they start.
  std::vector<ClusterSnapshotPtr> snapshots() const;
  // Called (main thread) with every new snapshot once the workers run.
  void set_publish(Publish publish) { publish_ = std::move(publish); }

  // Main thread. A reloaded config: new clusters appear, removed ones are published empty (their
  // pools drain), changed settings apply, static endpoint lists are diffed like discovery
  // updates. Health state survives for endpoints that stay, unless the health check changed.
  void reconfigure(const std::vector<config::Cluster>& clusters);

  // Main thread, for clusters that come and go one at a time (the mesh's Services) rather than
  // with a config. upsert adds a cluster without hosts (published at once) or changes its
  // settings (published when they differ); remove publishes it empty and forgets it.
  void upsert(const config::Cluster& settings);
  void remove(const std::string& cluster);
  bool contains(const std::string& cluster) const { return clusters_.count(cluster) != 0; }
  size_t size() const { return clusters_.size(); }
  // Endpoint-set changes are logged at debug level rather than info (thousands of Services).
  void set_quiet(bool quiet) { quiet_ = quiet; }

  // Main thread. Discovery's complete current endpoint set of a cluster: endpoints that stay keep
  // their health and ejection state, new ones start healthy, gone ones leave (their calls in
  // flight finish). Only ready, non-terminating endpoints take new calls.
  void set_endpoints(const std::string& cluster, const std::vector<DiscoveredEndpoint>& endpoints);

  // Main thread. A worker saw `consecutive_failures` failed calls in a row on the host.
  void report_outlier(const std::string& cluster, const std::string& host_key);

  std::map<std::string, std::map<std::string, HostHealth>> health() const;
  uint64_t ejections_total() const { return ejections_total_; }

 private:
  struct HostState {
    Host host;
    std::unique_ptr<HealthChecker> checker;
    std::unique_ptr<net::Timer> unejection;
    TimePoint unejected_at{};
    HostHealth view;
  };
  struct ClusterState {
    config::Cluster settings;
    // With `tls`: how health checks connect (the main thread's own TLS sessions and context).
    std::shared_ptr<net::Connector> tls;
    std::vector<std::unique_ptr<HostState>> hosts;
    uint64_t version = 0;
  };

  void publish(ClusterState& cluster);
  // New settings of a cluster; a changed health check restarts its hosts' checkers.
  void change_settings(ClusterState& state, const config::Cluster& settings);
  std::unique_ptr<HostState> make_host(ClusterState& cluster, const Host& host);
  // (Re)starts the host's health checker per the cluster's settings (none when disabled).
  void start_checker(ClusterState& cluster, HostState& host);
  void on_health_transition(ClusterState& cluster, HostState& host, bool healthy);
  void uneject(ClusterState& cluster, HostState& host);

  net::EventLoop& loop_;
  Random random_;
  std::map<std::string, std::unique_ptr<ClusterState>> clusters_;
  Publish publish_;
  uint64_t ejections_total_ = 0;
  bool quiet_ = false;
};

}  // namespace h2mesh::cluster
