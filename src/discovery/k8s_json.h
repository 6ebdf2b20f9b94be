#pragma once

// Reading the Kubernetes API's JSON safely: helpers shared by the parsers of each kind
// (k8s_slices.cc, k8s_services.cc). Internal to the h2mesh_k8s library: it brings in nlohmann's
// header, which nothing outside the parsers needs.
//
// Input from the network: every access checks the type first, so nothing here throws.

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "discovery/k8s_api.h"

namespace h2mesh::discovery::k8s::json {

using Json = nlohmann::json;

inline const Json* member(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

inline std::string string_at(const Json& j, const char* key) {
  const Json* m = member(j, key);
  return m && m->is_string() ? m->get<std::string>() : std::string();
}

inline std::optional<bool> bool_at(const Json& j, const char* key) {
  const Json* m = member(j, key);
  if (!m || !m->is_boolean()) return std::nullopt;
  return m->get<bool>();
}

inline std::optional<int64_t> int_at(const Json& j, const char* key) {
  const Json* m = member(j, key);
  if (!m || !m->is_number_integer()) return std::nullopt;
  return m->get<int64_t>();
}

inline Error bad(std::string message) {
  return make_error(ErrorCode::InvalidArgument, std::move(message));
}

// A whole document that must be an object.
Result<Json> parse_object(std::string_view text, const char* what);

// The body of a LIST reply: only `items` and `metadata.resourceVersion` matter. Each element of
// `items` is handed to `on_item` as soon as it is complete and then dropped, so a list of thousands
// of objects never exists as one JSON tree: the peak is the body's text plus one item. `what` names
// the list in errors ("the Service list"). Returns the list's resourceVersion and continue token;
// the first error of `on_item` stops nothing but is returned.
Result<ListMeta> parse_list(std::string_view body, const char* what,
                            const std::function<Result<void>(const Json& item)>& on_item);

// The envelope of one watch line ({"type":..., "object":...}): the type, the object's
// resourceVersion (every type but ERROR), the Status of an ERROR. `*object` points into `doc`
// (ADDED, MODIFIED, DELETED: the object to parse with the kind's own parser).
Result<WatchEventHead> parse_event_head(std::string_view line, Json* doc, const Json** object);

ApiStatus status_of(const Json& j);

// A LIST body whose items `parse` (Result<T>(const Json&)) reads.
template <class T, class Parse>
Result<ObjectList<T>> parse_object_list(std::string_view body, const char* what, Parse parse) {
  ObjectList<T> list;
  auto meta = parse_list(body, what, [&](const Json& item) -> Result<void> {
    auto object = parse(item);
    if (!object) return object.error();
    list.items.push_back(std::move(*object));
    return {};
  });
  if (!meta) return meta.error();
  list.resource_version = std::move(meta->resource_version);
  list.continue_token = std::move(meta->continue_token);
  return list;
}

// A watch line into an event type made of WatchEventHead and an object, which `parse` reads
// into (event.*object) for ADDED, MODIFIED and DELETED.
template <class Event, class T, class Parse>
Result<Event> parse_event(std::string_view line, T Event::*object, Parse parse) {
  Json doc;
  const Json* json_object = nullptr;
  auto head = parse_event_head(line, &doc, &json_object);
  if (!head) return head.error();
  Event event;
  static_cast<WatchEventHead&>(event) = std::move(*head);
  if (json_object) {
    auto parsed = parse(*json_object);
    if (!parsed) return parsed.error();
    event.*object = std::move(*parsed);
  }
  return event;
}

}  // namespace h2mesh::discovery::k8s::json
