#include "discovery/k8s_api.h"

#include "discovery/k8s_json.h"

namespace h2mesh::discovery::k8s {

const char* watch_event_name(WatchEventType type) {
  switch (type) {
    case WatchEventType::Added:
      return "ADDED";
    case WatchEventType::Modified:
      return "MODIFIED";
    case WatchEventType::Deleted:
      return "DELETED";
    case WatchEventType::Bookmark:
      return "BOOKMARK";
    case WatchEventType::Error:
      return "ERROR";
  }
  return "?";
}

std::optional<ApiStatus> parse_status(std::string_view text) {
  auto j = json::parse_object(text, "the reply");
  if (!j || json::string_at(*j, "kind") != "Status") return std::nullopt;
  return json::status_of(*j);
}

namespace json {

Result<Json> parse_object(std::string_view text, const char* what) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad(std::string(what) + " is not valid JSON");
  if (!j.is_object()) return bad(std::string(what) + " is not a JSON object");
  return j;
}

Result<ListMeta> parse_list(std::string_view body, const char* what,
                            const std::function<Result<void>(const Json& item)>& on_item) {
  std::string top_key;  // the member of the list object being read
  std::optional<Error> item_error;
  // Depths as nlohmann reports them: the list object's keys are at 1, the objects in `items` end
  // at 2. Anything else is kept (metadata is small).
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key) {
      top_key = parsed.is_string() ? parsed.get<std::string>() : std::string();
    } else if (depth == 2 && event == Json::parse_event_t::object_end && top_key == "items") {
      if (!item_error) {
        auto r = on_item(parsed);
        if (!r) item_error = r.error();
      }
      return false;  // handed over: drop it from the tree
    }
    return true;
  };
  Json j = Json::parse(body.begin(), body.end(), callback, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad(std::string(what) + " is not valid JSON");
  if (!j.is_object()) return bad(std::string(what) + " is not a JSON object");
  const Json* items = member(j, "items");
  if (!items || !(items->is_array() || items->is_null()))
    return bad(std::string(what) + " has no items (kind " + string_at(j, "kind") + ")");
  // Objects were handed over and dropped; whatever is left was not an object.
  if (items->is_array() && !items->empty())
    return bad(std::string("an item of ") + what + " is not a JSON object");
  if (item_error) return *item_error;
  ListMeta out;
  if (const Json* meta = member(j, "metadata")) {
    out.resource_version = string_at(*meta, "resourceVersion");
    out.continue_token = string_at(*meta, "continue");
  }
  if (out.resource_version.empty()) return bad(std::string(what) + " has no resourceVersion");
  return out;
}

Result<WatchEventHead> parse_event_head(std::string_view line, Json* doc, const Json** object) {
  *object = nullptr;
  auto j = parse_object(line, "a watch event");
  if (!j) return j.error();
  *doc = std::move(*j);
  std::string type = string_at(*doc, "type");
  const Json* obj = member(*doc, "object");
  if (!obj || !obj->is_object()) return bad("a watch event has no object");
  WatchEventHead head;
  if (type == "ADDED") {
    head.type = WatchEventType::Added;
  } else if (type == "MODIFIED") {
    head.type = WatchEventType::Modified;
  } else if (type == "DELETED") {
    head.type = WatchEventType::Deleted;
  } else if (type == "BOOKMARK") {
    head.type = WatchEventType::Bookmark;
  } else if (type == "ERROR") {
    head.type = WatchEventType::Error;
    head.status = status_of(*obj);
    return head;
  } else {
    return bad("unknown watch event type \"" + type + "\"");
  }
  if (const Json* meta = member(*obj, "metadata"))
    head.resource_version = string_at(*meta, "resourceVersion");
  if (head.type == WatchEventType::Bookmark) {
    if (head.resource_version.empty()) return bad("a BOOKMARK event has no resourceVersion");
    return head;
  }
  *object = obj;
  return head;
}

ApiStatus status_of(const Json& j) {
  ApiStatus st;
  st.code = static_cast<int>(int_at(j, "code").value_or(0));
  st.reason = string_at(j, "reason");
  st.message = string_at(j, "message");
  return st;
}

}  // namespace json
}  // namespace h2mesh::discovery::k8s
