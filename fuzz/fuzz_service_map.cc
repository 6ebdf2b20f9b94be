// The mesh's Service map built from the Kubernetes API's JSON as the watcher gets it: the
// input's first line is a LIST body of Services, the second a LIST body of EndpointSlices, each
// further line one watch event (of EndpointSlices when it names that kind, else of Services).
// After every line the map is built, and must be what the workers rely on: entries sorted and
// unique, every cluster IP found in by_address pointing into the map, endpoints sorted (host,
// then port), unique, IP literals; a second build with nothing new gives no map.

#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <tuple>

#include "discovery/service_map.h"

namespace k8s = h2mesh::discovery::k8s;
using h2mesh::discovery::ServiceMap;
using h2mesh::discovery::ServiceMapBuilder;

namespace {

void check(const ServiceMap& map) {
  for (size_t i = 0; i < map.services.size(); ++i) {
    const auto& s = *map.services[i];
    if (s.cluster_ips.empty() || s.port == 0) abort();
    if (i > 0) {
      const auto& p = *map.services[i - 1];
      if (!(std::tie(p.namespace_, p.service, p.port) < std::tie(s.namespace_, s.service, s.port)))
        abort();  // not sorted, or twice
    }
    for (const auto& ip : s.cluster_ips) {
      if (ip.port != s.port) abort();
      const auto* found = map.find(ip);
      if (!found) abort();
      if (found == &s) continue;
      // Another entry claimed the address first: it must be in the map.
      bool present = false;
      for (const auto& other : map.services) present = present || other.get() == found;
      if (!present) abort();
    }
    for (size_t k = 0; k < s.endpoints.size(); ++k) {
      const auto& a = s.endpoints[k].address;
      unsigned char buf[16];
      if (inet_pton(a.is_ipv6() ? AF_INET6 : AF_INET, a.host.c_str(), buf) != 1) abort();
      const auto& p = s.endpoints[k > 0 ? k - 1 : 0].address;
      if (k > 0 && !(p.host < a.host || (p.host == a.host && p.port < a.port))) abort();
    }
  }
  for (const auto& [key, entry] : map.by_address) {
    bool present = false;
    for (const auto& s : map.services) present = present || s.get() == entry;
    if (!present) abort();
  }
}

void build_and_check(ServiceMapBuilder& builder, uint64_t* version) {
  auto map = builder.build();
  if (map) {
    if (map->version != *version + 1) abort();
    *version = map->version;
    check(*map);
  }
  if (builder.build()) abort();  // nothing changed since
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ServiceMapBuilder builder;
  uint64_t version = 0;
  auto next_line = [&]() {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    return line;
  };
  if (auto services = k8s::parse_service_list(next_line())) {
    builder.replace_services(services->items.empty() ? "" : services->items[0].namespace_,
                             std::move(services->items));
  }
  if (auto slices = k8s::parse_slice_list(next_line()))
    builder.replace_slices("", std::move(slices->items));
  build_and_check(builder, &version);
  while (!text.empty()) {
    std::string_view line = next_line();
    if (line.find("EndpointSlice") != std::string_view::npos) {
      if (auto ev = k8s::parse_watch_event(line)) builder.apply(*ev);
    } else if (auto ev = k8s::parse_service_event(line)) {
      builder.apply(*ev);
    }
    build_and_check(builder, &version);
  }
  return 0;
}
