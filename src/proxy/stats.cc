#include "proxy/stats.h"

#include <string_view>

namespace h2mesh::proxy {

EndpointStats endpoint_totals(const ClusterStats& cluster) {
  EndpointStats total = cluster.departed;
  for (const auto& [key, e] : cluster.endpoints) total.add(e);
  return total;
}

bool retire_endpoints(ClusterStats& cluster, TimePoint now, Duration retention) {
  bool waiting = false;
  for (auto it = cluster.endpoints.begin(); it != cluster.endpoints.end();) {
    EndpointStats& e = it->second;
    // An endpoint in the snapshot always has its pool among the users.
    if (e.users > 0 || e.in_snapshot) {
      if (!e.in_snapshot) waiting = true;  // left, still draining
      e.unused_since.reset();
      ++it;
      continue;
    }
    if (!e.unused_since) e.unused_since = now;
    if (now - *e.unused_since < retention) {
      waiting = true;
      ++it;
      continue;
    }
    // Nothing is in flight or open any more: only the counters are left to keep.
    cluster.departed.calls.calls_total += e.calls.calls_total;
    for (size_t i = 0; i < kStatusSlots; ++i) cluster.departed.calls.by_status[i] += e.calls.by_status[i];
    // Gauges (open connections) are zero by now and would mean nothing summed.
#define H2MESH_FOLD_COUNTER(member, name, cluster_name, type, help, cluster_help) \
  if constexpr (std::string_view(#type) == "counter") cluster.departed.member += e.member;
    H2MESH_ENDPOINT_COUNTERS(H2MESH_FOLD_COUNTER)
#undef H2MESH_FOLD_COUNTER
    it = cluster.endpoints.erase(it);
  }
  return waiting;
}

}  // namespace h2mesh::proxy
