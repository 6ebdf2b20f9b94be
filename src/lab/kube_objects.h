#pragma once

// The objects of the demo's Kubernetes API server (kube_api_server.h): Services and
// EndpointSlices, their JSON in the API's wire format (shared/reference/kubernetes-api.md: the
// same as tests/fakes/fake_kube_apiserver.py), and a store that numbers every change with a
// resourceVersion and keeps the history that watches replay. Pure data and JSON, no I/O.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/time.h"

namespace h2mesh::lab {

struct ServicePortSpec {
  std::string name;  // "grpc": EndpointSlice ports are matched to it by this name
  uint16_t port = 0;
  uint16_t target_port = 0;
  std::string app_protocol;  // "" or e.g. "kubernetes.io/h2c"
};

struct ServiceObject {
  std::string namespace_;
  std::string name;
  std::string cluster_ip;  // IPv4; "None" for a headless Service
  std::vector<ServicePortSpec> ports;
};

struct SliceEndpoint {
  std::string ip;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  std::string pod;  // targetRef name; "" for none
};

struct EndpointSliceObject {
  std::string namespace_;
  std::string name;
  std::string service;  // label kubernetes.io/service-name
  std::vector<SliceEndpoint> endpoints;
  std::vector<ServicePortSpec> ports;  // `port` is the target port; `target_port` is unused
};

enum class Resource { Services, EndpointSlices };

// What a request asks for: one collection, all namespaces ("") or one, optionally narrowed by
// an equality label selector (the only kind h2mesh sends: kubernetes.io/service-name=NAME).
struct ApiQuery {
  Resource resource = Resource::Services;
  std::string namespace_;
  std::string label_key, label_value;  // empty: no selector
  bool watch = false;
  std::string resource_version;  // of a watch: where it starts ("" or "0": now, with ADDEDs)
  bool bookmarks = false;
  int timeout_seconds = 0;  // 0: the server's default
};

// Parses a request target (path and query). An error is a 404 (unknown path) or 400 (a query
// the server does not serve), told apart by ErrorCode::NoRoute / InvalidArgument.
Result<ApiQuery> parse_api_target(const std::string& target);

// The JSON of one object; `with_type` adds kind and apiVersion (watch events carry them, list
// items do not).
nlohmann::json service_json(const ServiceObject& s, const std::string& resource_version,
                            const std::string& uid, bool with_type);
nlohmann::json slice_json(const EndpointSliceObject& s, const std::string& resource_version,
                          const std::string& uid, int64_t generation, bool with_type);
// A Status object, e.g. (410, "Expired", "too old resource version: ...").
nlohmann::json status_json(int code, const std::string& reason, const std::string& message);

// The objects and their history. Thread-safe: the demo changes them while the server's
// connection threads list and watch.
class ObjectStore {
 public:
  // Each returns the resourceVersion of the change.
  uint64_t put_service(const ServiceObject& s);
  uint64_t put_slice(const EndpointSliceObject& s);
  // 0 when there was no such object.
  uint64_t remove(Resource r, const std::string& namespace_, const std::string& name);

  // The List body for `q` (items without kind/apiVersion, the store's resourceVersion).
  nlohmann::json list(const ApiQuery& q) const;

  // Watch event lines (`{"type":..,"object":..}` each with its "\n") for `q` after
  // resourceVersion `after`; *now is set to the store's resourceVersion they bring the watcher to.
  std::string events_after(const ApiQuery& q, uint64_t after, uint64_t* now) const;
  // ADDED lines for every object matching `q` (a watch from "" or "0" starts with the state).
  std::string state_as_added(const ApiQuery& q, uint64_t* now) const;

  uint64_t resource_version() const;
  // Blocks until the store moves past `seen`, `stop` is true (checked again on wake()) or
  // `deadline` passes.
  void wait_past(uint64_t seen, TimePoint deadline, const std::atomic<bool>& stop) const;
  void wake();

 private:
  struct Entry {
    Resource resource;
    std::string namespace_, name, service;  // service: the slice's label ("" for a Service)
    nlohmann::json object;                  // with kind/apiVersion, its resourceVersion set
  };
  struct Event {
    uint64_t rv;
    const char* type;
    Entry entry;
  };
  static bool matches(const Entry& e, const ApiQuery& q);
  uint64_t record(const char* type, Entry entry);  // under mu_
  // A new object's uid and creationTimestamp, kept for its later versions. Under mu_.
  void stamp(const std::string& key, nlohmann::json* metadata);

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  uint64_t rv_ = 1000;
  std::map<std::string, Entry> objects_;  // "<resource>/<namespace>/<name>"
  std::map<std::string, std::pair<std::string, std::string>> stamps_;  // uid, created
  std::map<std::string, int64_t> generations_;
  std::vector<Event> history_;
};

}  // namespace h2mesh::lab
