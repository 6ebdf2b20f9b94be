#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/host_set.h"
#include "config/config.h"
#include "net/event_loop.h"

namespace h2mesh::discovery {

// Learns the endpoints of one cluster and reports, on the main thread, the complete current set
// every time it changes (a reset: the registry works out what was added and removed). Runs on
// the main thread's event loop; never blocks it.
class Resolver {
 public:
  using OnUpdate = std::function<void(std::vector<cluster::DiscoveredEndpoint>)>;

  virtual ~Resolver() = default;
  // Starts resolving; updates follow through the callback given at construction.
  virtual void start() = 0;
  // True once a complete endpoint set was delivered. While a source is unreachable the last
  // known set stays in use and synced() stays true; last_error() says what is wrong.
  virtual bool synced() const = 0;
  virtual std::string last_error() const = 0;
};

// DNS (c-ares): all A/AAAA records of cluster.discovery.dns.name.
std::unique_ptr<Resolver> make_dns_resolver(net::EventLoop& loop, const config::Cluster& cluster,
                                            Resolver::OnUpdate on_update);

// Kubernetes API: list + watch of discovery.k8s.io/v1 EndpointSlices of a Service.
std::unique_ptr<Resolver> make_kubernetes_resolver(net::EventLoop& loop,
                                                   const config::Cluster& cluster,
                                                   Resolver::OnUpdate on_update);

}  // namespace h2mesh::discovery
