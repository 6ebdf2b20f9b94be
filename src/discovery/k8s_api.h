#pragma once

// What every collection of the Kubernetes API has in common on the wire: the Status of an error,
// and the envelope of a watch event. The objects themselves are parsed by each kind's own parser
// (k8s_slices.h, k8s_services.h).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace h2mesh::discovery::k8s {

// A kube-apiserver Status: the body of an error reply, or the object of an ERROR watch event.
struct ApiStatus {
  int code = 0;
  std::string reason;  // e.g. "Expired", "Forbidden", "Unauthorized"
  std::string message;
};

enum class WatchEventType { Added, Modified, Deleted, Bookmark, Error };

const char* watch_event_name(WatchEventType type);

// What a LIST reply (or one page of it) says besides its items.
struct ListMeta {
  std::string resource_version;  // where the watch starts (the same on every page of a LIST)
  std::string continue_token;    // metadata.continue: "" on the last page
};

// A LIST reply (or one page of it) of objects of one kind.
template <class T>
struct ObjectList {
  std::string resource_version;  // where the watch starts
  std::string continue_token;    // a page of a LIST: where the next page starts ("" last page)
  std::vector<T> items;
};

// One watch event without its object: what the list/watch loop needs to know.
struct WatchEventHead {
  WatchEventType type = WatchEventType::Bookmark;
  std::string resource_version;  // the object's (every type but ERROR)
  ApiStatus status;              // ERROR
};

// The Status in an error reply; nullopt when the body is not one (e.g. an HTML page of a proxy).
std::optional<ApiStatus> parse_status(std::string_view json);

}  // namespace h2mesh::discovery::k8s
