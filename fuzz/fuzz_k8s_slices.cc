// The Kubernetes API's JSON as discovery reads it: the input's first line is a LIST body
// (EndpointSlices), each further line one watch event applied to the cache, as the resolver
// does. Every line is also read as an error Status. The endpoint set that comes out must be
// what the registry expects: sorted by address, one entry per address, IP literals only.

#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "discovery/k8s_slices.h"

namespace k8s = h2mesh::discovery::k8s;

namespace {

void check_endpoints(const std::vector<h2mesh::cluster::DiscoveredEndpoint>& eps) {
  for (size_t i = 0; i < eps.size(); ++i) {
    const auto& a = eps[i].address;
    unsigned char buf[16];
    int family = a.is_ipv6() ? AF_INET6 : AF_INET;
    if (inet_pton(family, a.host.c_str(), buf) != 1) abort();
    if (i > 0 && !(eps[i - 1].address.host < a.host ||
                   (eps[i - 1].address.host == a.host && eps[i - 1].address.port < a.port)))
      abort();  // not sorted, or an address twice
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // The port setting of the cluster: a name, a number or empty, chosen by the input's length so
  // that each is reached without spending input bytes on it.
  static const char* const kPorts[] = {"grpc", "50051", ""};
  k8s::SliceCache cache(kPorts[size % 3]);

  size_t eol = text.find('\n');
  std::string_view first = text.substr(0, eol);
  (void)k8s::parse_status(first);
  if (auto list = k8s::parse_slice_list(first)) {
    cache.reset(*list);
    check_endpoints(cache.endpoints());
  }
  while (eol != std::string_view::npos) {
    text.remove_prefix(eol + 1);
    eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    (void)k8s::parse_status(line);
    auto event = k8s::parse_watch_event(line);
    if (!event) continue;
    cache.apply(*event);
    check_endpoints(cache.endpoints());
    for (const auto& problem : cache.take_problems())
      if (problem.empty()) abort();
  }
  return 0;
}
