#pragma once

// The EndpointSlice wire format (discovery.k8s.io/v1) and the per-slice cache of one Service.
// Pure data and functions, no I/O: every rule of the API is unit-tested without a server.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/host_set.h"
#include "common/result.h"
#include "discovery/k8s_api.h"

namespace h2mesh::discovery::k8s {

struct SlicePort {
  std::string name;              // "" when unnamed
  std::optional<uint16_t> port;  // the target port; nullopt: `null`, "all ports"
};

struct SliceEndpoint {
  std::string address;  // addresses[0]: the only one with a meaning
  // Conditions are optional pointers in the API: missing ready and serving mean true, missing
  // terminating means false.
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  std::string zone;
  std::string name;  // targetRef.name (the pod), else hostname; may be empty
};

struct EndpointSlice {
  std::string key;               // "namespace/name": the cache key
  std::string service;           // label kubernetes.io/service-name: the Service it belongs to
  std::string resource_version;  // opaque: compared for equality only
  std::string address_type;      // "IPv4", "IPv6" or "FQDN"
  std::vector<SliceEndpoint> endpoints;
  std::vector<SlicePort> ports;
};

using SliceList = ObjectList<EndpointSlice>;

// A watch event of EndpointSlices: the envelope (type, resourceVersion, Status of an ERROR) and
// the slice of an ADDED, MODIFIED or DELETED.
struct WatchEvent : WatchEventHead {
  EndpointSlice slice;
};

// The body of a LIST reply.
Result<SliceList> parse_slice_list(std::string_view json);
// One line of a watch stream ({"type":..., "object":...}).
Result<WatchEvent> parse_watch_event(std::string_view json_line);

// The target port to use from a slice's ports for the cluster's `port` setting: a name picks the
// port of that name; a number picks the port with that value (or any number when the slice says
// "all ports"); empty picks the slice's only port. nullopt: the slice has no such port.
std::optional<uint16_t> select_port(const std::vector<SlicePort>& ports, const std::string& wanted);

// The port named `name` ("" for the unnamed port of a single-port Service): how a Service port
// finds its target port in the slices, which name their ports after the Service's ports.
std::optional<uint16_t> select_port_by_name(const std::vector<SlicePort>& ports,
                                            const std::string& name);

// The endpoints of one slice as discovery reports them. FQDN slices and addresses that are not IP
// literals of the slice's type are skipped; `problem` (not null) says why a whole slice, or some
// of its endpoints, could not be used, and is left empty otherwise.
std::vector<cluster::DiscoveredEndpoint> slice_endpoints(const EndpointSlice& slice,
                                                         const std::string& wanted_port,
                                                         std::string* problem);
// The endpoints of an IPv6 (`v6`) or IPv4 slice on a target port already chosen; appends to
// *out. Returns how many had no address of that family (they are skipped).
size_t append_endpoints(const std::vector<SliceEndpoint>& endpoints, bool v6, uint16_t port,
                        std::vector<cluster::DiscoveredEndpoint>* out);

// The endpoints of several slices of one Service port as one set: one entry per address (when
// two slices list an address, the most usable entry wins), sorted by host text then port so that
// sets compare between calls. When none is ready, those serving and terminating are marked ready
// (kube-proxy's fallback).
std::vector<cluster::DiscoveredEndpoint> merge_endpoints(
    std::vector<cluster::DiscoveredEndpoint> all);

// The slices of one Service, keyed by namespace/name, each with its own endpoints.
class SliceCache {
 public:
  explicit SliceCache(std::string wanted_port) : wanted_port_(std::move(wanted_port)) {}

  // Replaces the whole cache with a LIST's items.
  void reset(const SliceList& list);
  // Applies ADDED, MODIFIED (the full new state of a slice) and DELETED; ignores the rest.
  void apply(const WatchEvent& event);
  // merge_endpoints() over all slices.
  std::vector<cluster::DiscoveredEndpoint> endpoints() const;
  // Why slices or endpoints were skipped since the last call (for the log).
  std::vector<std::string> take_problems();
  size_t slice_count() const { return slices_.size(); }

 private:
  void store(const EndpointSlice& slice);

  std::string wanted_port_;
  std::map<std::string, std::vector<cluster::DiscoveredEndpoint>> slices_;
  std::vector<std::string> problems_;
};

}  // namespace h2mesh::discovery::k8s
