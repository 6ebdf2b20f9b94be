#include "discovery/k8s_slices.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "discovery/k8s_json.h"

namespace h2mesh::discovery::k8s {
namespace {

using json::bad;
using json::bool_at;
using json::int_at;
using json::Json;
using json::member;
using json::string_at;

SliceEndpoint parse_endpoint(const Json& e) {
  SliceEndpoint out;
  if (const Json* addrs = member(e, "addresses");
      addrs && addrs->is_array() && !addrs->empty() && (*addrs)[0].is_string()) {
    out.address = (*addrs)[0].get<std::string>();
  }
  if (const Json* c = member(e, "conditions")) {
    out.ready = bool_at(*c, "ready").value_or(true);
    out.serving = bool_at(*c, "serving").value_or(true);
    out.terminating = bool_at(*c, "terminating").value_or(false);
  }
  out.zone = string_at(e, "zone");
  if (const Json* ref = member(e, "targetRef")) out.name = string_at(*ref, "name");
  if (out.name.empty()) out.name = string_at(e, "hostname");
  return out;
}

Result<EndpointSlice> parse_slice(const Json& j) {
  if (!j.is_object()) return bad("an EndpointSlice is not a JSON object");
  EndpointSlice s;
  const Json* meta = member(j, "metadata");
  if (!meta || !meta->is_object()) return bad("an EndpointSlice has no metadata");
  std::string name = string_at(*meta, "name");
  if (name.empty()) return bad("an EndpointSlice has no metadata.name");
  s.key = string_at(*meta, "namespace") + "/" + name;
  if (const Json* labels = member(*meta, "labels"))
    s.service = string_at(*labels, "kubernetes.io/service-name");
  s.resource_version = string_at(*meta, "resourceVersion");
  s.address_type = string_at(j, "addressType");
  // `endpoints` and `ports` have no omitempty: an empty list arrives as null.
  if (const Json* eps = member(j, "endpoints"); eps && eps->is_array()) {
    for (const Json& e : *eps) s.endpoints.push_back(parse_endpoint(e));
  }
  if (const Json* ports = member(j, "ports"); ports && ports->is_array()) {
    for (const Json& p : *ports) {
      SlicePort port;
      port.name = string_at(p, "name");
      auto n = int_at(p, "port");
      // Out-of-range numbers become port 0, which select_port() never returns.
      if (n) port.port = *n > 0 && *n <= 65535 ? static_cast<uint16_t>(*n) : 0;
      s.ports.push_back(std::move(port));
    }
  }
  return s;
}

bool is_number(const std::string& s, uint16_t* out) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

bool is_ip_of_type(const std::string& address, bool v6) {
  unsigned char buf[16];
  return inet_pton(v6 ? AF_INET6 : AF_INET, address.c_str(), buf) == 1;
}

// Higher is more usable: ready beats serving, serving beats not, not terminating beats
// terminating.
int usability(const cluster::DiscoveredEndpoint& e) {
  return (e.ready ? 4 : 0) + (e.serving ? 2 : 0) + (e.terminating ? 0 : 1);
}

}  // namespace

Result<SliceList> parse_slice_list(std::string_view json) {
  return json::parse_object_list<EndpointSlice>(json, "the EndpointSlice list", parse_slice);
}

Result<WatchEvent> parse_watch_event(std::string_view json_line) {
  return json::parse_event(json_line, &WatchEvent::slice, parse_slice);
}

std::optional<uint16_t> select_port(const std::vector<SlicePort>& ports,
                                    const std::string& wanted) {
  auto usable = [](const SlicePort& p) { return p.port && *p.port != 0; };
  if (wanted.empty()) {
    if (ports.size() == 1 && usable(ports[0])) return ports[0].port;
    return std::nullopt;
  }
  uint16_t number = 0;
  if (is_number(wanted, &number)) {
    for (const auto& p : ports)
      if (p.port == number) return number;
    for (const auto& p : ports)
      if (!p.port) return number;  // "all ports": the configured number is the port
    return std::nullopt;
  }
  for (const auto& p : ports)
    if (p.name == wanted && usable(p)) return p.port;
  return std::nullopt;
}

std::optional<uint16_t> select_port_by_name(const std::vector<SlicePort>& ports,
                                            const std::string& name) {
  for (const auto& p : ports)
    if (p.name == name && p.port && *p.port != 0) return p.port;
  return std::nullopt;
}

std::vector<cluster::DiscoveredEndpoint> slice_endpoints(const EndpointSlice& slice,
                                                         const std::string& wanted_port,
                                                         std::string* problem) {
  problem->clear();
  std::vector<cluster::DiscoveredEndpoint> out;
  if (slice.endpoints.empty()) return out;
  if (slice.address_type != "IPv4" && slice.address_type != "IPv6") {
    *problem = "slice " + slice.key + ": addressType " + slice.address_type + " is not used";
    return out;
  }
  auto port = select_port(slice.ports, wanted_port);
  if (!port) {
    std::string have;
    for (const auto& p : slice.ports)
      have += (have.empty() ? "" : ", ") + (p.name.empty() ? "(unnamed)" : p.name) + "=" +
              (p.port ? std::to_string(*p.port) : "all");
    *problem = "slice " + slice.key + " has no port " +
               (wanted_port.empty() ? "(and not exactly one)" : "\"" + wanted_port + "\"") +
               " among [" + have + "]";
    return out;
  }
  size_t skipped = append_endpoints(slice.endpoints, slice.address_type == "IPv6", *port, &out);
  if (skipped > 0)
    *problem = "slice " + slice.key + ": " + std::to_string(skipped) + " endpoint(s) without an " +
               slice.address_type + " address skipped";
  return out;
}

size_t append_endpoints(const std::vector<SliceEndpoint>& endpoints, bool v6, uint16_t port,
                        std::vector<cluster::DiscoveredEndpoint>* out) {
  size_t skipped = 0;
  for (const auto& e : endpoints) {
    if (!is_ip_of_type(e.address, v6)) {
      ++skipped;
      continue;
    }
    cluster::DiscoveredEndpoint d;
    d.address = config::SocketAddress{e.address, port};
    d.ready = e.ready && !e.terminating;  // a terminating endpoint gets calls only as a fallback
    d.serving = e.serving;
    d.terminating = e.terminating;
    d.zone = e.zone;
    d.name = e.name;
    out->push_back(std::move(d));
  }
  return skipped;
}

std::vector<cluster::DiscoveredEndpoint> merge_endpoints(
    std::vector<cluster::DiscoveredEndpoint> all) {
  // Sorted by host text, then port (10.0.0.1 before 10.0.0.10, whatever their ports); among
  // entries of one address the most usable first (the earlier one on a tie), which the unique
  // below keeps.
  std::vector<size_t> order(all.size());
  for (size_t i = 0; i < all.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = all[a].address;
    const auto& y = all[b].address;
    if (x.host != y.host) return x.host < y.host;
    if (x.port != y.port) return x.port < y.port;
    int ua = usability(all[a]), ub = usability(all[b]);
    return ua != ub ? ua > ub : a < b;
  });
  std::vector<cluster::DiscoveredEndpoint> out;
  out.reserve(order.size());
  bool any_ready = false;
  for (size_t k = 0; k < order.size(); ++k) {
    if (!out.empty() && out.back().address == all[order[k]].address) continue;
    out.push_back(std::move(all[order[k]]));
    any_ready = any_ready || out.back().ready;
  }
  // As kube-proxy does: with no ready endpoint, the terminating ones that still serve get the
  // calls (during a rollout or a scale-down they answer; otherwise every call would fail).
  if (!any_ready)
    for (auto& e : out) e.ready = e.serving && e.terminating;
  return out;
}

void SliceCache::store(const EndpointSlice& slice) {
  std::string problem;
  auto eps = slice_endpoints(slice, wanted_port_, &problem);
  if (!problem.empty()) problems_.push_back(std::move(problem));
  slices_[slice.key] = std::move(eps);
}

void SliceCache::reset(const SliceList& list) {
  slices_.clear();
  for (const auto& s : list.items) store(s);
}

void SliceCache::apply(const WatchEvent& event) {
  switch (event.type) {
    case WatchEventType::Added:
    case WatchEventType::Modified:
      store(event.slice);
      break;
    case WatchEventType::Deleted:
      slices_.erase(event.slice.key);
      break;
    case WatchEventType::Bookmark:
    case WatchEventType::Error:
      break;
  }
}

std::vector<cluster::DiscoveredEndpoint> SliceCache::endpoints() const {
  std::vector<cluster::DiscoveredEndpoint> all;
  for (const auto& [key, eps] : slices_) all.insert(all.end(), eps.begin(), eps.end());
  return merge_endpoints(std::move(all));
}

std::vector<std::string> SliceCache::take_problems() {
  std::vector<std::string> out;
  out.swap(problems_);
  return out;
}

}  // namespace h2mesh::discovery::k8s
