#include "discovery/k8s_namespaces.h"

#include "discovery/k8s_json.h"

namespace h2mesh::discovery::k8s {
namespace {

using json::bad;
using json::Json;
using json::member;
using json::string_at;

Result<Namespace> parse_namespace(const Json& j) {
  const Json* meta = member(j, "metadata");
  if (!meta || !meta->is_object()) return bad("a Namespace has no metadata");
  Namespace ns;
  ns.name = string_at(*meta, "name");
  if (ns.name.empty()) return bad("a Namespace has no metadata.name");
  if (const Json* labels = member(*meta, "labels"); labels && labels->is_object()) {
    for (const auto& [key, value] : labels->items())
      if (value.is_string()) ns.labels.emplace(key, value.get<std::string>());
  }
  return ns;
}

}  // namespace

Result<NamespaceList> parse_namespace_list(std::string_view text) {
  return json::parse_object_list<Namespace>(text, "the Namespace list", parse_namespace);
}

Result<NamespaceEvent> parse_namespace_event(std::string_view line) {
  return json::parse_event(line, &NamespaceEvent::namespace_, parse_namespace);
}

}  // namespace h2mesh::discovery::k8s
