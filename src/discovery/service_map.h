#pragma once

// The mesh's Service map: every port of every Kubernetes Service that has a cluster IP, with the
// ready endpoints behind it, keyed by what a client dials (ClusterIP:port). Built on the main
// thread from the Services and EndpointSlices the API server reports (service_map_watcher.h),
// published to the workers as an immutable snapshot.
//
// This file is the pure part: the cache of Services and slices and the building of maps from it,
// with no I/O, so that every rule is unit-tested without a server.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cluster/host_set.h"
#include "config/config.h"
#include "discovery/k8s_services.h"
#include "discovery/k8s_slices.h"

namespace h2mesh::discovery {

// One TCP port of one Service that has a cluster IP. Immutable once in a map; a map built later
// reuses the same object (same pointer) while nothing about that port changed, so a consumer
// finds what changed by comparing pointers.
struct MeshService {
  std::string namespace_;  // "grpcdemo"
  std::string service;     // "greeter"
  std::string port_name;   // the Service port's name ("" when unnamed)
  uint16_t port = 0;       // the Service port: what clients dial on a cluster IP
  std::string app_protocol;  // spec.ports[].appProtocol, may be empty
  // Every address of spec.clusterIPs (IPv4 and/or IPv6), each with `port`.
  std::vector<config::SocketAddress> cluster_ips;
  // From the Service's EndpointSlices, on the target port the slices give for `port_name`: one
  // entry per address, IPv4 and IPv6, sorted by address. `ready` says who gets calls: the ready
  // endpoints, or when none is ready the serving and terminating ones (kube-proxy's fallback).
  std::vector<cluster::DiscoveredEndpoint> endpoints;
  bool operator==(const MeshService&) const = default;
};

struct ServiceMap {
  // Sorted by namespace, Service name, port.
  std::vector<std::shared_ptr<const MeshService>> services;
  // config::SocketAddress::to_string() of each cluster IP and port ("10.96.0.15:50051",
  // "[fd00:10:96::f]:50051", IP text as inet_ntop writes it) → its entry in `services`.
  std::unordered_map<std::string, const MeshService*> by_address;
  uint64_t version = 0;  // 1, 2, ... in the order maps were built

  // The entry a client dialling `address` means, or null.
  const MeshService* find(const config::SocketAddress& address) const {
    auto it = by_address.find(address.to_string());
    return it == by_address.end() ? nullptr : it->second;
  }
};

using ServiceMapPtr = std::shared_ptr<const ServiceMap>;

// The Services and EndpointSlices known so far, and the maps made of them. Main thread.
//
// Changes are recorded as they come (a LIST replaces the objects of its scope, a watch event
// changes one); build() then redoes only the Services they touched.
class ServiceMapBuilder {
 public:
  // A LIST of Services of `namespace_` ("" = of every namespace): they replace all known
  // Services of that scope.
  void replace_services(const std::string& namespace_, std::vector<k8s::Service> items);
  void replace_slices(const std::string& namespace_, std::vector<k8s::EndpointSlice> items);
  // ADDED, MODIFIED and DELETED; other events change nothing.
  void apply(const k8s::ServiceEvent& event);
  void apply(const k8s::WatchEvent& event);

  // A new map when an entry changed since the last build (or `always`), else null. Entries that
  // did not change are the same objects as in the last map.
  ServiceMapPtr build(bool always = false);

  size_t service_count() const { return services_.size(); }
  size_t slice_count() const { return slice_owner_.size(); }

 private:
  using Name = std::pair<std::string, std::string>;  // namespace, Service name: map order
  using Entries = std::vector<std::shared_ptr<const MeshService>>;

  void put_slice(k8s::EndpointSlice slice);
  void remove_slice(const std::string& key);
  Entries make_entries(const k8s::Service& service) const;
  bool rebuild(const Name& name);

  std::map<Name, k8s::Service> services_;
  // The slices of each Service (by the Service's name, whether the Service is known or not),
  // and which Service each slice belongs to (label kubernetes.io/service-name).
  std::map<Name, std::map<std::string, k8s::EndpointSlice>> slices_;
  std::unordered_map<std::string, Name> slice_owner_;
  // What the last map holds, per Service.
  std::map<Name, Entries> entries_;
  std::set<Name> dirty_;
  bool all_dirty_ = false;
  uint64_t version_ = 0;
};

}  // namespace h2mesh::discovery
