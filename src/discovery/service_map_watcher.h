#pragma once

// Mesh mode's view of the cluster: LIST + WATCH of every Service and every EndpointSlice the
// credentials may see (cluster-wide, or per namespace of a list), turned into ServiceMap
// snapshots (service_map.h) on the main thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/time.h"
#include "discovery/service_map.h"
#include "net/event_loop.h"

namespace h2mesh::discovery {

class ServiceMapWatcher {
 public:
  struct Settings {
    std::string kubeconfig;               // "": in-cluster credentials (the pod's account)
    // Empty: every namespace, with cluster-wide requests. Duplicates and "" are ignored.
    std::vector<std::string> namespaces;
    Duration backoff_base = std::chrono::milliseconds(500);  // after a failure, doubling ...
    Duration backoff_max = std::chrono::seconds(30);         // ... up to this, with jitter
    size_t list_page_size = 500;  // objects per LIST reply: bounds the memory a LIST needs
  };

  // For /metrics.
  struct Counters {
    struct Collection {
      uint64_t lists = 0;     // LIST replies applied
      uint64_t watches = 0;   // WATCH requests accepted
      uint64_t events = 0;    // ADDED, MODIFIED, DELETED applied
      uint64_t failures = 0;  // errors (each retried after a backoff)
      uint64_t relists = 0;   // LISTs forced by 410 Gone or an unreadable event
    };
    Collection services;         // summed over the namespaces
    Collection endpoint_slices;  // summed over the namespaces
    uint64_t maps_published = 0;
    size_t services_known = 0;  // Services in the cache, with a cluster IP or not
    size_t slices_known = 0;
    size_t map_entries = 0;  // Service ports in the current map
  };

  // Main thread. `on_update` receives each new map on the main thread: the first once both
  // collections (of every namespace) are listed, then one per loop iteration in which something
  // changed (a burst of watch events gives one map).
  using OnUpdate = std::function<void(ServiceMapPtr)>;

  ServiceMapWatcher(net::EventLoop& loop, Settings settings, OnUpdate on_update);
  ~ServiceMapWatcher();
  ServiceMapWatcher(const ServiceMapWatcher&) = delete;
  ServiceMapWatcher& operator=(const ServiceMapWatcher&) = delete;

  void start();
  // True once a map was published. While the API server is unreachable the last map stays in
  // use and synced() stays true; last_error() says what is wrong ("" while all is well).
  bool synced() const { return current_ != nullptr; }
  std::string last_error() const;
  Counters counters() const;
  // The last map published; null before the first.
  ServiceMapPtr current() const { return current_; }

 private:
  class Feed;
  friend class Feed;

  void changed();
  void publish();

  net::EventLoop& loop_;
  OnUpdate on_update_;
  ServiceMapBuilder builder_;
  ServiceMapPtr current_;
  uint64_t maps_published_ = 0;
  net::Timer publish_timer_;  // armed at zero delay: runs after this iteration's I/O
  std::vector<std::unique_ptr<Feed>> feeds_;  // last: their callbacks use the members above
};

}  // namespace h2mesh::discovery
