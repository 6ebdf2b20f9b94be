#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cluster/registry.h"
#include "config/config.h"
#include "discovery/service_map.h"
#include "discovery/service_map_watcher.h"
#include "net/event_loop.h"
#include "proxy/mesh_table.h"

namespace h2mesh::server {

// Mesh mode on the main thread: turns the Service map (every Service port with a cluster IP and
// its ready endpoints, from the Kubernetes API) into the workers' MeshTable. Each Service port
// is a cluster of its own ("name.namespace:port") in a registry beside the config's, so that
// outlier ejection works as for configured clusters; its settings are the mesh's defaults with
// the Service's override. A change makes a new table once per loop iteration, however many
// Services it touched; routes of unchanged Services are shared between tables.
class MeshController {
 public:
  using Publish = std::function<void(proxy::MeshTablePtr)>;

  MeshController(net::EventLoop& loop, std::shared_ptr<const config::Config> config,
                 Publish publish);
  ~MeshController();

  // Starts watching the API (Services and EndpointSlices).
  void start();
  // A reloaded config: new settings for every Service (the watch restarts only when what it
  // watches changed: kubeconfig, namespaces, backoff).
  void set_config(std::shared_ptr<const config::Config> config);
  // Main thread. The Service map changed (the watcher's callback; tests call it directly).
  void apply(std::shared_ptr<const discovery::ServiceMap> map);

  // A worker saw a host of a mesh cluster fail repeatedly.
  bool report_outlier(const std::string& cluster, const std::string& host);
  // True once a complete map arrived; *why says what is missing otherwise.
  bool synced(std::string* why) const;
  proxy::MeshTablePtr table() const { return table_; }
  std::map<std::string, std::map<std::string, cluster::HostHealth>> health() const {
    return registry_.health();
  }
  const discovery::ServiceMapWatcher* watcher() const { return watcher_.get(); }
  size_t service_count() const { return services_.size(); }

 private:
  struct Entry {
    std::shared_ptr<const discovery::MeshService> source;  // as the map last had it
    const config::MeshServiceSettings* settings = nullptr;  // in config_
    cluster::ClusterSnapshotPtr snapshot;  // the registry's latest
    proxy::MeshRoutePtr route;  // null when one of the above changed since the last table
  };

  void start_watcher();
  // Settings of one Service from the current config.
  void configure(const std::string& cluster, Entry& entry);
  void on_snapshot(cluster::ClusterSnapshotPtr snapshot);
  void schedule_publish();
  void publish();

  net::EventLoop& loop_;
  std::shared_ptr<const config::Config> config_;
  Publish publish_;
  cluster::ClusterRegistry registry_;
  std::unique_ptr<discovery::ServiceMapWatcher> watcher_;
  std::shared_ptr<const discovery::ServiceMap> map_;
  std::map<std::string, Entry> services_;  // by cluster name
  proxy::MeshTablePtr table_;
  uint64_t version_ = 0;
  bool publish_pending_ = false;
};

// "greeter.grpcdemo:50051": the cluster of one Service port.
std::string mesh_cluster_name(const discovery::MeshService& service);

}  // namespace h2mesh::server
