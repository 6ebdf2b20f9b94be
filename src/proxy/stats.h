#pragma once

// Plain per-worker counters: no atomics, only the owning worker writes them. The admin server
// gets copies by posting a closure to each worker (server/worker.h) and adds them up.

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace h2mesh::proxy {

// Index 0..16: grpc-status codes; 17: calls that ended without a status (reset, connection lost).
constexpr size_t kStatusSlots = 18;
constexpr size_t kNoStatusSlot = 17;

struct CallCounters {
  uint64_t calls_total = 0;
  uint64_t in_flight = 0;
  std::array<uint64_t, kStatusSlots> by_status{};

  void add(const CallCounters& o) {
    calls_total += o.calls_total;
    in_flight += o.in_flight;
    for (size_t i = 0; i < kStatusSlots; ++i) by_status[i] += o.by_status[i];
  }
};

struct EndpointStats {
  CallCounters calls;
  uint64_t upstream_connections = 0;        // open now
  uint64_t upstream_connections_total = 0;  // ever opened
  uint64_t connect_failures = 0;
  uint64_t upstream_resets = 0;
  bool in_backoff = false;  // last connect failed; waiting to retry
  bool in_snapshot = true;  // false once discovery removed it (still draining)

  void add(const EndpointStats& o) {
    calls.add(o.calls);
    upstream_connections += o.upstream_connections;
    upstream_connections_total += o.upstream_connections_total;
    connect_failures += o.connect_failures;
    upstream_resets += o.upstream_resets;
    in_backoff = in_backoff || o.in_backoff;
    in_snapshot = in_snapshot && o.in_snapshot;
  }
};

struct ClusterStats {
  CallCounters calls;
  uint64_t no_endpoint = 0;       // calls failed because no endpoint could take them
  uint64_t pending_overflow = 0;  // calls failed because the pending queue was full
  std::map<std::string, EndpointStats> endpoints;  // key: endpoint address

  void add(const ClusterStats& o) {
    calls.add(o.calls);
    no_endpoint += o.no_endpoint;
    pending_overflow += o.pending_overflow;
    for (const auto& [k, v] : o.endpoints) endpoints[k].add(v);
  }
};

struct WorkerStats {
  uint64_t downstream_connections_total = 0;
  uint64_t downstream_connections_active = 0;
  uint64_t downstream_protocol_errors = 0;
  uint64_t calls_no_route = 0;
  std::map<std::string, ClusterStats> clusters;

  void add(const WorkerStats& o) {
    downstream_connections_total += o.downstream_connections_total;
    downstream_connections_active += o.downstream_connections_active;
    downstream_protocol_errors += o.downstream_protocol_errors;
    calls_no_route += o.calls_no_route;
    for (const auto& [k, v] : o.clusters) clusters[k].add(v);
  }
};

}  // namespace h2mesh::proxy
