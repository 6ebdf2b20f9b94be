#include "lab/kube_objects.h"

#include <cstdio>
#include <ctime>

namespace h2mesh::lab {
namespace {

using nlohmann::json;

constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";

const char* resource_name(Resource r) {
  return r == Resource::Services ? "services" : "endpointslices";
}

std::string now_rfc3339() {
  time_t t = time(nullptr);
  tm utc;
  gmtime_r(&t, &utc);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

bool is_true(const std::string& v) { return v == "1" || v == "true"; }

json ports_json(const std::vector<ServicePortSpec>& ports, bool service) {
  json out = json::array();
  for (const auto& p : ports) {
    json j = {{"name", p.name}, {"protocol", "TCP"}, {"port", p.port}};
    if (!p.app_protocol.empty()) j["appProtocol"] = p.app_protocol;
    if (service) j["targetPort"] = p.target_port;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

Result<ApiQuery> parse_api_target(const std::string& target) {
  ApiQuery q;
  std::string path = target.substr(0, target.find('?'));
  std::string query = target.size() > path.size() ? target.substr(path.size() + 1) : "";
  auto parts = split(path, '/');  // "" first: the path starts with '/'
  auto not_found = [&] {
    return make_error(ErrorCode::NoRoute, "the server could not find the requested resource");
  };
  std::vector<std::string> rest;
  if (parts.size() >= 3 && parts[0].empty() && parts[1] == "api" && parts[2] == "v1") {
    rest.assign(parts.begin() + 3, parts.end());
    q.resource = Resource::Services;
  } else if (parts.size() >= 4 && parts[0].empty() && parts[1] == "apis" &&
             parts[2] == "discovery.k8s.io" && parts[3] == "v1") {
    rest.assign(parts.begin() + 4, parts.end());
    q.resource = Resource::EndpointSlices;
  } else {
    return not_found();
  }
  if (rest.size() == 3 && rest[0] == "namespaces" && !rest[1].empty()) {
    q.namespace_ = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (rest.size() != 1 || rest[0] != resource_name(q.resource)) return not_found();
  for (const auto& pair : split(query, '&')) {
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq));
    std::string value = eq == std::string::npos ? "" : percent_decode(pair.substr(eq + 1));
    if (key == "watch") {
      q.watch = is_true(value);
    } else if (key == "resourceVersion") {
      q.resource_version = value;
    } else if (key == "allowWatchBookmarks") {
      q.bookmarks = is_true(value);
    } else if (key == "timeoutSeconds") {
      char* end = nullptr;
      long t = strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || t < 0)
        return make_error(ErrorCode::InvalidArgument, "bad timeoutSeconds '" + value + "'");
      q.timeout_seconds = static_cast<int>(std::min(t, 24L * 3600));
    } else if (key == "labelSelector") {
      size_t e = value.find('=');
      if (value.empty()) continue;
      if (e == std::string::npos || e == 0 || value.find('=', e + 1) != std::string::npos ||
          value.find_first_of("!, ()") != std::string::npos)
        return make_error(
            ErrorCode::InvalidArgument,
            "this server takes only one key=value label selector, not '" + value + "'");
      q.label_key = value.substr(0, e);
      q.label_value = value.substr(e + 1);
    }
    // Other parameters (limit, fieldSelector, resourceVersionMatch, ...) are not served: the
    // demo's clients do not send them, and ignoring one answers as if it were absent.
  }
  return q;
}

json service_json(const ServiceObject& s, const std::string& resource_version,
                  const std::string& uid, bool with_type) {
  json j;
  if (with_type) {
    j["kind"] = "Service";
    j["apiVersion"] = "v1";
  }
  j["metadata"] = {{"name", s.name},
                   {"namespace", s.namespace_},
                   {"uid", uid},
                   {"resourceVersion", resource_version},
                   {"creationTimestamp", now_rfc3339()},
                   {"labels", {{"app", s.name}}}};
  json spec = {{"ports", ports_json(s.ports, true)},
               {"selector", {{"app", s.name}}},
               {"clusterIP", s.cluster_ip},
               {"type", "ClusterIP"},
               {"sessionAffinity", "None"}};
  if (s.cluster_ip != "None") {
    spec["clusterIPs"] = json::array({s.cluster_ip});
    spec["ipFamilies"] = json::array({"IPv4"});
    spec["ipFamilyPolicy"] = "SingleStack";
  }
  j["spec"] = std::move(spec);
  j["status"] = {{"loadBalancer", json::object()}};
  return j;
}

json slice_json(const EndpointSliceObject& s, const std::string& resource_version,
                const std::string& uid, int64_t generation, bool with_type) {
  json j;
  if (with_type) {
    j["kind"] = "EndpointSlice";
    j["apiVersion"] = "discovery.k8s.io/v1";
  }
  j["metadata"] = {
      {"name", s.name},
      {"generateName", s.service + "-"},
      {"namespace", s.namespace_},
      {"uid", uid},
      {"resourceVersion", resource_version},
      {"generation", generation},
      {"creationTimestamp", now_rfc3339()},
      {"labels",
       {{kServiceNameLabel, s.service},
        {"endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io"}}},
      {"ownerReferences", json::array({{{"apiVersion", "v1"},
                                        {"kind", "Service"},
                                        {"name", s.service},
                                        {"controller", true},
                                        {"blockOwnerDeletion", true}}})}};
  j["addressType"] = "IPv4";
  // `endpoints` and `ports` have no omitempty in the API: empty lists are written as null.
  if (s.endpoints.empty()) {
    j["endpoints"] = nullptr;
  } else {
    json eps = json::array();
    for (const auto& e : s.endpoints) {
      json ep = {{"addresses", json::array({e.ip})},
                 {"conditions",
                  {{"ready", e.ready}, {"serving", e.serving}, {"terminating", e.terminating}}}};
      if (!e.pod.empty())
        ep["targetRef"] = {{"kind", "Pod"}, {"namespace", s.namespace_}, {"name", e.pod}};
      ep["nodeName"] = "lab-node";
      eps.push_back(std::move(ep));
    }
    j["endpoints"] = std::move(eps);
  }
  j["ports"] = s.ports.empty() ? json(nullptr) : ports_json(s.ports, false);
  return j;
}

json status_json(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", reason},
          {"code", code}};
}

bool ObjectStore::matches(const Entry& e, const ApiQuery& q) {
  if (e.resource != q.resource) return false;
  if (!q.namespace_.empty() && e.namespace_ != q.namespace_) return false;
  if (q.label_key.empty()) return true;
  const json& labels = e.object["metadata"].value("labels", json::object());
  auto it = labels.find(q.label_key);
  return it != labels.end() && it->is_string() && *it == q.label_value;
}

void ObjectStore::stamp(const std::string& key, json* metadata) {
  auto [it, added] = stamps_.emplace(key, std::pair<std::string, std::string>());
  if (added) {
    char buf[40];
    snprintf(buf, sizeof(buf), "6c61622d-0000-4000-8000-%012zu", stamps_.size());
    it->second = {buf, (*metadata)["creationTimestamp"]};
  }
  (*metadata)["uid"] = it->second.first;
  (*metadata)["creationTimestamp"] = it->second.second;
}

uint64_t ObjectStore::record(const char* type, Entry entry) {
  ++rv_;
  entry.object["metadata"]["resourceVersion"] = std::to_string(rv_);
  history_.push_back(Event{rv_, type, entry});
  std::string key =
      std::string(resource_name(entry.resource)) + "/" + entry.namespace_ + "/" + entry.name;
  if (std::string(type) == "DELETED") {
    objects_.erase(key);
  } else {
    objects_[key] = std::move(entry);
  }
  changed_.notify_all();
  return rv_;
}

uint64_t ObjectStore::put_service(const ServiceObject& s) {
  std::lock_guard lock(mu_);
  std::string key = "services/" + s.namespace_ + "/" + s.name;
  const char* type = objects_.count(key) ? "MODIFIED" : "ADDED";
  json object = service_json(s, "", "", true);
  stamp(key, &object["metadata"]);
  return record(type, Entry{Resource::Services, s.namespace_, s.name, "", std::move(object)});
}

uint64_t ObjectStore::put_slice(const EndpointSliceObject& s) {
  std::lock_guard lock(mu_);
  std::string key = "endpointslices/" + s.namespace_ + "/" + s.name;
  const char* type = objects_.count(key) ? "MODIFIED" : "ADDED";
  json object = slice_json(s, "", "", ++generations_[key], true);
  stamp(key, &object["metadata"]);
  return record(
      type, Entry{Resource::EndpointSlices, s.namespace_, s.name, s.service, std::move(object)});
}

uint64_t ObjectStore::remove(Resource r, const std::string& namespace_, const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = objects_.find(std::string(resource_name(r)) + "/" + namespace_ + "/" + name);
  if (it == objects_.end()) return 0;
  return record("DELETED", it->second);  // the last state, with the deletion's resourceVersion
}

json ObjectStore::list(const ApiQuery& q) const {
  std::lock_guard lock(mu_);
  json items = json::array();
  for (const auto& [key, e] : objects_) {
    if (!matches(e, q)) continue;
    json item = e.object;
    item.erase("kind");
    item.erase("apiVersion");
    items.push_back(std::move(item));
  }
  const bool services = q.resource == Resource::Services;
  return {{"kind", services ? "ServiceList" : "EndpointSliceList"},
          {"apiVersion", services ? "v1" : "discovery.k8s.io/v1"},
          {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
          {"items", std::move(items)}};
}

std::string ObjectStore::events_after(const ApiQuery& q, uint64_t after, uint64_t* now) const {
  std::lock_guard lock(mu_);
  std::string lines;
  for (const auto& ev : history_) {
    if (ev.rv <= after || !matches(ev.entry, q)) continue;
    lines += json{{"type", ev.type}, {"object", ev.entry.object}}.dump() + "\n";
  }
  *now = rv_;
  return lines;
}

std::string ObjectStore::state_as_added(const ApiQuery& q, uint64_t* now) const {
  std::lock_guard lock(mu_);
  std::string lines;
  for (const auto& [key, e] : objects_)
    if (matches(e, q)) lines += json{{"type", "ADDED"}, {"object", e.object}}.dump() + "\n";
  *now = rv_;
  return lines;
}

uint64_t ObjectStore::resource_version() const {
  std::lock_guard lock(mu_);
  return rv_;
}

void ObjectStore::wait_past(uint64_t seen, TimePoint deadline,
                            const std::atomic<bool>& stop) const {
  std::unique_lock lock(mu_);
  changed_.wait_until(lock, deadline, [&] { return rv_ > seen || stop; });
}

void ObjectStore::wake() {
  // Under the lock: a waiter that has not yet checked `stop` sees it set once it holds the lock.
  std::lock_guard lock(mu_);
  changed_.notify_all();
}

}  // namespace h2mesh::lab
