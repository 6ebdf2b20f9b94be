#pragma once

// The Service wire format (core/v1), only what the mesh's Service map needs: the cluster IPs and
// the ports. Pure data and functions, no I/O.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "discovery/k8s_api.h"

namespace h2mesh::discovery::k8s {

struct ServicePort {
  std::string name;          // "" when unnamed (only a single-port Service may leave it out)
  std::string protocol;      // "TCP" (the default when absent), "UDP", "SCTP"
  uint16_t port = 0;         // what clients dial on the cluster IP; 0 when absent or out of range
  std::string app_protocol;  // spec.ports[].appProtocol, e.g. "kubernetes.io/h2c"; may be empty
  bool operator==(const ServicePort&) const = default;
};

struct Service {
  std::string key;  // "namespace/name": the cache key, and the EndpointSlices' owner
  std::string namespace_;
  std::string name;
  std::string type;       // spec.type: "ClusterIP" (the default when absent), "NodePort",
                          // "LoadBalancer", "ExternalName"
  bool headless = false;  // spec.clusterIP "None": DNS gives the pods, there is nothing to dial
  // spec.clusterIPs (or spec.clusterIP when the list is absent), as IP literals in the canonical
  // text of inet_ntop, so that they compare equal to an original destination formatted the same
  // way. Entries that are not IP literals ("None", "") are left out.
  std::vector<std::string> cluster_ips;
  std::vector<ServicePort> ports;
  bool operator==(const Service&) const = default;

  // Whether connections to a cluster IP of this Service are balanced by kube-proxy (and so are
  // ours to balance per call): not headless, not ExternalName, with an address.
  bool has_cluster_ip() const {
    return !headless && type != "ExternalName" && !cluster_ips.empty();
  }
};

using ServiceList = ObjectList<Service>;

// A watch event of Services: the envelope and the Service of an ADDED, MODIFIED or DELETED.
struct ServiceEvent : WatchEventHead {
  Service service;
};

// The body of a LIST reply of /api/v1/services (or one namespace's).
Result<ServiceList> parse_service_list(std::string_view json);
// One line of a watch stream of Services.
Result<ServiceEvent> parse_service_event(std::string_view json_line);

}  // namespace h2mesh::discovery::k8s
