#pragma once

// The mesh's Service map: every port of every Kubernetes Service that has a cluster IP, with the
// ready endpoints behind it, keyed by what a client dials (ClusterIP:port). Built on the main
// thread from the Services and EndpointSlices the API server reports (service_map_watcher.h),
// published to the workers as an immutable snapshot.
//
// This file is the pure part: the cache of Services and slices and the building of maps from it,
// with no I/O, so that every rule is unit-tested without a server.

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cluster/host_set.h"
#include "config/config.h"
#include "net/address_key.h"
#include "discovery/k8s_services.h"
#include "discovery/k8s_slices.h"

namespace h2mesh::discovery {

// One TCP port of one Service that has a cluster IP. Immutable once in a map; a map built later
// reuses the same object (same pointer) while nothing about that port changed, so a consumer
// finds what changed by comparing pointers.
struct MeshService {
  std::string namespace_;    // "grpcdemo"
  std::string service;       // "greeter"
  std::string port_name;     // the Service port's name ("" when unnamed)
  uint16_t port = 0;         // the Service port: what clients dial on a cluster IP
  std::string app_protocol;  // spec.ports[].appProtocol, may be empty
  // Every address of spec.clusterIPs (IPv4 and/or IPv6), each with `port`.
  std::vector<config::SocketAddress> cluster_ips;
  // From the Service's EndpointSlices, on the target port the slices give for `port_name`: one
  // entry per address, IPv4 and IPv6, sorted by address. `ready` says who gets calls: the ready
  // endpoints, or when none is ready the serving and terminating ones (kube-proxy's fallback).
  // `name` (the pod) is left empty: nothing downstream reads it, and it is not worth its memory
  // in a map of thousands of Services.
  std::vector<cluster::DiscoveredEndpoint> endpoints;
  bool operator==(const MeshService&) const = default;
};

// A cluster IP and port in binary form, the key of the map: a worker looks up each intercepted
// connection's original destination (SO_ORIGINAL_DST) without formatting text or allocating.
using ServiceAddress = net::AddressKey;
using ServiceAddressHash = net::AddressKeyHash;

struct ServiceMap {
  // Sorted by namespace, Service name, port.
  std::vector<std::shared_ptr<const MeshService>> services;
  // Each cluster IP and port → its entry in `services`.
  std::unordered_map<ServiceAddress, const MeshService*, ServiceAddressHash> by_address;
  uint64_t version = 0;  // 1, 2, ... in the order maps were built

  // The entry a client dialling `address` means, or null. Any thread (the map is immutable).
  const MeshService* find(const ServiceAddress& address) const {
    auto it = by_address.find(address);
    return it == by_address.end() ? nullptr : it->second;
  }
  const MeshService* find(const sockaddr* address) const {
    auto key = ServiceAddress::from(address);
    return key ? find(*key) : nullptr;
  }
  const MeshService* find(const config::SocketAddress& address) const {
    auto key = ServiceAddress::from(address);
    return key ? find(*key) : nullptr;
  }
};

using ServiceMapPtr = std::shared_ptr<const ServiceMap>;

// The Services and EndpointSlices known so far, and the maps made of them. Main thread.
//
// Changes are recorded as they come (a LIST replaces the objects of its scope, a watch event
// changes one); build() then redoes only the Services they touched. What a Service contributes
// (cluster IPs, ports) is kept in the map's entries themselves, not in a second copy: a Service
// with no entry (headless, ExternalName, no TCP port) needs nothing kept but its count.
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

  // Services known (from the lists, then ADDED and DELETED), with a cluster IP or not.
  size_t service_count() const;
  size_t slice_count() const { return slices_.size(); }

 private:
  using Name = std::pair<std::string, std::string>;  // namespace, Service name: map order
  using Entries = std::vector<std::shared_ptr<const MeshService>>;

  // An EndpointSlice as the map needs it (its name is the key of slices_).
  struct Slice {
    const Name* owner = nullptr;  // the key of its Service in services_
    bool v6 = false;              // else IPv4; FQDN slices keep no endpoints
    std::vector<k8s::SlicePort> ports;
    std::vector<k8s::SliceEndpoint> endpoints;
  };

  void set_service(const Name& name, k8s::Service service);
  void put_slice(k8s::EndpointSlice slice);
  void remove_slice(const std::string& key);
  Entries make_entries(const Name& name, const std::vector<std::string>& cluster_ips,
                       const std::vector<k8s::ServicePort>& ports) const;
  bool rebuild(const Name& name);

  // What is kept per Service, whether the Service itself is known yet or only slices labelled
  // with its name.
  struct ServiceState {
    // Its entries in the last map: also where its cluster IPs and ports are found when only its
    // slices change.
    Entries entries;
    std::vector<const std::string*> slices;  // keys of slices_ (stable)
  };

  std::map<Name, ServiceState> services_;
  // Services changed since the last build, in their new state (an empty Service: gone).
  std::map<Name, k8s::Service> changed_services_;
  // Services whose slices changed since the last build.
  std::set<Name> changed_slices_;
  // Every slice by "namespace/name".
  std::unordered_map<std::string, Slice> slices_;
  std::map<std::string, size_t> services_per_namespace_;
  uint64_t version_ = 0;
};

}  // namespace h2mesh::discovery
