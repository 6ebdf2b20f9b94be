#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cluster/host_set.h"
#include "config/config.h"
#include "net/address_key.h"

namespace h2mesh::proxy {

// One port of one Kubernetes Service as the workers see it in mesh mode. Immutable; built on the
// main thread.
struct MeshRoute {
  std::string cluster;     // "greeter.grpcdemo:50051": its name in /clusters and /metrics
  std::string service;     // "greeter"
  std::string namespace_;  // "grpcdemo"
  cluster::ClusterSnapshotPtr snapshot;  // settings and current hosts (ejections included)
  // The Service's deadline bound and retry policy: the mesh's defaults or its override, in the
  // config of every table that holds this route (a reload makes new routes).
  const config::MeshServiceSettings* settings = nullptr;
  // The Service port says it carries HTTP/2 (declares_http2): its connections wait for the
  // client's preface up to the connection's header_timeout instead of detect_timeout, so a slow
  // client is never mistaken for a server that speaks first (and relayed, pinned to one pod).
  bool http2_declared = false;
};
using MeshRoutePtr = std::shared_ptr<const MeshRoute>;

// Whether a Service port declares HTTP/2, as Kubernetes and mesh users say it: appProtocol
// `grpc`, `h2c`, `http2` or `kubernetes.io/h2c`, or (without appProtocol) a port name `grpc`,
// `h2c` or `http2`, alone or followed by `-suffix` (Istio's port-naming convention).
bool declares_http2(std::string_view port_name, std::string_view app_protocol);

// The connections that dial a Service as a worker serves them: the mesh's connection settings
// and one default route to the Service's cluster. Made by a worker on the Service's first
// connection, not for every Service in the table.
inline std::shared_ptr<const config::Listener> make_mesh_listener(const config::Mesh& mesh,
                                                                  const MeshRoute& route) {
  auto listener = std::make_shared<config::Listener>(mesh.connection);
  config::Route r;
  r.cluster = route.cluster;
  r.max_timeout = route.settings->max_timeout;
  r.retry = route.settings->retry;
  listener->routes.push_back(std::move(r));
  return listener;
}

// Every Service port the mesh knows, by cluster IP:port and by cluster name. Immutable: a change
// makes a new table, which reaches each worker as one pointer; routes that did not change are
// the same objects in both tables.
struct MeshTable {
  std::shared_ptr<const config::Config> config;  // whose mesh block the routes follow
  // Each cluster IP and Service port (IPv4 and IPv6), in binary form: a connection's original
  // destination is looked up without formatting it.
  std::unordered_map<net::AddressKey, MeshRoutePtr, net::AddressKeyHash> by_address;
  std::unordered_map<std::string, MeshRoutePtr> by_cluster;
  uint64_t version = 0;

  const MeshRoute* find_address(const config::SocketAddress& address) const {
    auto key = net::AddressKey::from(address);
    if (!key) return nullptr;
    auto it = by_address.find(*key);
    return it == by_address.end() ? nullptr : it->second.get();
  }
  const MeshRoute* find_cluster(const std::string& cluster) const {
    auto it = by_cluster.find(cluster);
    return it == by_cluster.end() ? nullptr : it->second.get();
  }
};
using MeshTablePtr = std::shared_ptr<const MeshTable>;

}  // namespace h2mesh::proxy
