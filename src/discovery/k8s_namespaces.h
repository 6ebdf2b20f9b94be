#pragma once

// The Namespace wire format (core/v1), only what the admission webhook needs: the name and the
// labels (h2mesh-injection=enabled selects a namespace for sidecar injection). Pure data and
// functions, no I/O.

#include <map>
#include <string>
#include <string_view>

#include "common/result.h"
#include "discovery/k8s_api.h"

namespace h2mesh::discovery::k8s {

struct Namespace {
  std::string name;
  std::map<std::string, std::string> labels;  // metadata.labels; values that are not strings
                                              // are left out
  bool operator==(const Namespace&) const = default;
};

using NamespaceList = ObjectList<Namespace>;

// A watch event of Namespaces: the envelope and the Namespace of an ADDED, MODIFIED or DELETED.
struct NamespaceEvent : WatchEventHead {
  Namespace namespace_;
};

// The body of a LIST reply of /api/v1/namespaces (or one page of it).
Result<NamespaceList> parse_namespace_list(std::string_view json);
// One line of a watch stream of Namespaces.
Result<NamespaceEvent> parse_namespace_event(std::string_view json_line);

}  // namespace h2mesh::discovery::k8s
