#pragma once

// Plain per-worker counters: no atomics, only the owning worker writes them. The admin server
// gets copies by posting a closure to each worker (server/worker.h) and adds them up.
//
// The plain counters of each struct are one table (an X-macro) of rows
//   X(member, metric name, label, type, help)
// from which the struct's members, its add() and the /metrics families (admin/render.cc) are
// made, so that a new counter is one line. `label` is "" or one fixed `key="value"` pair: rows
// that share a metric name next to each other are the samples of one family (its help is the
// first row's); `type` is counter or gauge. Counters that are arrays, maps or computed stay out
// of the tables and are written out by hand.

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/histogram.h"
#include "common/time.h"
#include "config/config.h"
#include "net/tls_client.h"
#include "net/tls_context.h"
#include "net/tls_transport.h"
#include "proxy/tcp_relay.h"

namespace h2mesh::proxy {

// The member of one table row, and its share of add().
#define H2MESH_STAT_MEMBER(member, name, label, type, help) uint64_t member = 0;
#define H2MESH_STAT_ADD(member, name, label, type, help) member += o.member;

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

// An endpoint's counters. Each is shown per endpoint and, when the row names a cluster metric,
// summed over every endpoint the cluster ever had (the departed ones too, so those sums never go
// backwards): X(member, endpoint metric, cluster metric or nullptr, type, endpoint help,
// cluster help).
#define H2MESH_ENDPOINT_COUNTERS(X)                                                              \
  X(upstream_connections, "h2mesh_endpoint_upstream_connections_active", nullptr, gauge,        \
    "Open HTTP/2 connections to the endpoint.", nullptr)                                         \
  X(upstream_connections_total, "h2mesh_endpoint_upstream_connections_total",                    \
    "h2mesh_cluster_upstream_connections_total", counter,                                        \
    "HTTP/2 connections opened to the endpoint.",                                                \
    "HTTP/2 connections opened to the cluster's endpoints.")                                     \
  X(connect_failures, "h2mesh_endpoint_connect_failures_total",                                  \
    "h2mesh_cluster_connect_failures_total", counter, "Failed connection attempts.",             \
    "Failed connection attempts to the cluster's endpoints.")                                    \
  X(upstream_resets, "h2mesh_endpoint_upstream_resets_total",                                   \
    "h2mesh_cluster_upstream_resets_total", counter, "Streams the endpoint reset.",              \
    "Streams the cluster's endpoints reset.")

struct EndpointStats {
  CallCounters calls;
  // Microseconds. duration: calls whose last attempt went to this endpoint, from the client's
  // request headers to the end of the stream; upstream_duration: each attempt sent here, from
  // the pick to its response's end (or its failure).
  Histogram duration = duration_histogram();
  Histogram upstream_duration = duration_histogram();
#define H2MESH_ENDPOINT_MEMBER(member, name, cluster_name, type, help, cluster_help) \
  uint64_t member = 0;
  H2MESH_ENDPOINT_COUNTERS(H2MESH_ENDPOINT_MEMBER)
#undef H2MESH_ENDPOINT_MEMBER
  bool in_backoff = false;  // last connect failed; waiting to retry
  bool in_snapshot = true;  // false once discovery removed it (still draining)

  // Worker bookkeeping, not counters (add() leaves them alone): the pools and calls that still
  // point at this entry, and since when none does (see retire_endpoints).
  uint32_t users = 0;
  std::optional<TimePoint> unused_since;

  void add(const EndpointStats& o) {
    calls.add(o.calls);
    duration.add(o.duration);
    upstream_duration.add(o.upstream_duration);
#define H2MESH_ENDPOINT_ADD(member, name, cluster_name, type, help, cluster_help) \
  member += o.member;
    H2MESH_ENDPOINT_COUNTERS(H2MESH_ENDPOINT_ADD)
#undef H2MESH_ENDPOINT_ADD
    in_backoff = in_backoff || o.in_backoff;
    in_snapshot = in_snapshot && o.in_snapshot;
  }
};

// A cluster's counters, one series per cluster (labels: the cluster's, then the row's).
#define H2MESH_CLUSTER_COUNTERS(X)                                                               \
  X(no_endpoint, "h2mesh_cluster_no_endpoint_total", "", counter,                                \
    "Calls failed: no endpoint to pick.")                                                        \
  X(pending_overflow, "h2mesh_cluster_pending_overflow_total", "", counter,                      \
    "Calls failed: the queue waiting for an upstream connection was full.")                      \
  X(circuit_breaker_overflow, "h2mesh_cluster_circuit_breaker_overflow_total", "", counter,      \
    "Calls failed at once: max_calls or max_calls_per_endpoint reached.")                        \
  X(retry_budget_exhausted, "h2mesh_cluster_retry_budget_exhausted_total", "", counter,          \
    "Retries not made: the budget was spent.")                                                   \
  X(deadline_exceeded, "h2mesh_cluster_deadline_exceeded_total", "", counter,                    \
    "Calls the proxy ended at their deadline.")                                                  \
  X(response_header_limit, "h2mesh_cluster_response_header_limit_total", "", counter,            \
    "Responses refused: headers or trailers over the cluster's header limits.")                  \
  X(retries_connect_failure, "h2mesh_cluster_retries_total", "reason=\"connect_failure\"",       \
    counter,                                                                                     \
    "Retries by reason: connect_failure, refused_stream (both never processed), status.")        \
  X(retries_refused_stream, "h2mesh_cluster_retries_total", "reason=\"refused_stream\"",         \
    counter, "")                                                                                 \
  X(retries_status, "h2mesh_cluster_retries_total", "reason=\"status\"", counter, "")

struct ClusterStats {
  CallCounters calls;
  // Microseconds, as EndpointStats's, over all the cluster's calls and attempts.
  Histogram duration = duration_histogram();
  Histogram upstream_duration = duration_histogram();
  // Calls that made at least one attempt, by how many: [n-1] for n attempts (max_attempts is at
  // most kMaxAttemptsLimit, so every count has its slot and the sum is exact).
  std::array<uint64_t, config::RetryPolicy::kMaxAttemptsLimit> attempts{};
  H2MESH_CLUSTER_COUNTERS(H2MESH_STAT_MEMBER)
  // Upstream TLS handshakes by result, indexed by net::TlsClientResult (net/tls_client.h);
  // `tls` says the cluster originates TLS (its series are shown even at zero).
  bool tls = false;
  std::array<uint64_t, 7> tls_handshakes{};
  std::map<std::string, EndpointStats> endpoints;  // key: endpoint address
  // Counters of endpoints whose entry was dropped after they left, so that totals over the
  // cluster's endpoints never go backwards.
  EndpointStats departed;

  void add(const ClusterStats& o) {
    calls.add(o.calls);
    duration.add(o.duration);
    upstream_duration.add(o.upstream_duration);
    for (size_t i = 0; i < attempts.size(); ++i) attempts[i] += o.attempts[i];
    H2MESH_CLUSTER_COUNTERS(H2MESH_STAT_ADD)
    tls = tls || o.tls;
    for (size_t i = 0; i < tls_handshakes.size(); ++i) tls_handshakes[i] += o.tls_handshakes[i];
    departed.add(o.departed);
    for (const auto& [k, v] : o.endpoints) endpoints[k].add(v);
  }
};

// A rate limit as metrics name it: the listener, and the route's position in it.
struct RateLimitKey {
  std::string listener;
  int route = -1;  // index in the listener's routes (0 = first); -1: the listener's own limit
  auto operator<=>(const RateLimitKey&) const = default;
};
// The counters of every endpoint the cluster ever had: the departed ones and those still listed.
EndpointStats endpoint_totals(const ClusterStats& cluster);

// Worker thread. Drops the entries of endpoints that left the cluster once no pool or call uses
// them and `retention` has passed since (so that a scrape or two still sees their final counts),
// folding their counters into `departed`. An entry counts as unused from the first call that
// finds it so. Returns true while some entry still waits (the caller looks again later).
bool retire_endpoints(ClusterStats& cluster, TimePoint now, Duration retention);

// Mesh mode: what became of the connections redirected to the outbound port (http2: to a
// Service's cluster IP, balanced per call; unknown_destination: relayed, not a Service's cluster
// IP and port; opaque_port: relayed uninspected; not_http2: relayed, not HTTP/2 or nothing within
// detect_timeout; loop_refused: the original destination was the outbound port itself), and to
// the inbound port (mtls: mesh mTLS terminated; plaintext: clear-text HTTP/2 accepted
// (permissive); relayed: clear text, not HTTP/2, or TLS without mesh.tls; plaintext_refused:
// clear text closed (strict); loop_refused: the destination was an h2mesh port).
#define H2MESH_MESH_COUNTERS(X)                                                                  \
  X(http2_connections, "h2mesh_mesh_connections_total", "outcome=\"http2\"", counter,            \
    "Connections redirected to the outbound port, by what became of them.")                      \
  X(unknown_destination, "h2mesh_mesh_connections_total", "outcome=\"unknown_destination\"",     \
    counter, "")                                                                                 \
  X(opaque, "h2mesh_mesh_connections_total", "outcome=\"opaque_port\"", counter, "")             \
  X(detected_other, "h2mesh_mesh_connections_total", "outcome=\"not_http2\"", counter, "")       \
  X(loops_refused, "h2mesh_mesh_connections_total", "outcome=\"loop_refused\"", counter, "")     \
  X(no_destination, "h2mesh_mesh_connections_total", "outcome=\"no_destination\"", counter, "")  \
  X(inbound_mtls, "h2mesh_inbound_connections_total", "outcome=\"mtls\"", counter,               \
    "Connections redirected to the inbound port, by what became of them.")                       \
  X(inbound_plaintext, "h2mesh_inbound_connections_total", "outcome=\"plaintext\"", counter, "") \
  X(inbound_relayed, "h2mesh_inbound_connections_total", "outcome=\"relayed\"", counter, "")     \
  X(inbound_refused_plaintext, "h2mesh_inbound_connections_total",                              \
    "outcome=\"plaintext_refused\"", counter, "")                                               \
  X(inbound_loops_refused, "h2mesh_inbound_connections_total", "outcome=\"loop_refused\"",       \
    counter, "")                                                                                 \
  X(inbound_no_destination, "h2mesh_inbound_connections_total", "outcome=\"no_destination\"",    \
    counter, "")

struct MeshStats {
  H2MESH_MESH_COUNTERS(H2MESH_STAT_MEMBER)
  RelayStats relay;

  // Calls arriving on the inbound side by the caller's identity (its SPIFFE ID; "plaintext"
  // without mTLS). At most kMaxInboundIdentities keys; later identities count as "other".
  static constexpr size_t kMaxInboundIdentities = 100;
  static constexpr const char* kOtherIdentity = "other";
  // Origination (mesh.tls): connections to Service endpoints.
  net::TlsClientCounters mtls_handshakes{};  // the mTLS attempts, by result
  uint64_t plaintext_fallbacks = 0;   // the peer spoke no TLS: connected again in clear text
  uint64_t plaintext_remembered = 0;  // clear text at once: the endpoint fell back recently
  uint64_t mtls_wrong_trust_domain = 0;  // verified, but no SPIFFE ID of the trust domain
  std::map<std::string, uint64_t> inbound_calls;

  void count_inbound_call(const std::string& identity, uint64_t n = 1) {
    auto it = inbound_calls.find(identity);
    if (it != inbound_calls.end()) {
      it->second += n;
      return;
    }
    // "other" itself takes no identity's place (workers' counts are added in key order).
    const size_t identities = inbound_calls.size() - inbound_calls.count(kOtherIdentity);
    if (identity == kOtherIdentity || identities >= kMaxInboundIdentities) {
      inbound_calls[kOtherIdentity] += n;
      return;
    }
    inbound_calls.emplace(identity, n);
  }

  void add(const MeshStats& o) {
    for (size_t i = 0; i < mtls_handshakes.size(); ++i) mtls_handshakes[i] += o.mtls_handshakes[i];
    plaintext_fallbacks += o.plaintext_fallbacks;
    plaintext_remembered += o.plaintext_remembered;
    mtls_wrong_trust_domain += o.mtls_wrong_trust_domain;
    H2MESH_MESH_COUNTERS(H2MESH_STAT_ADD)
    for (const auto& [identity, n] : o.inbound_calls) count_inbound_call(identity, n);
    relay.add(o.relay);
  }
};

// Certificates seen by several workers, by file: each worker reloads on its own, and the newest
// certificate of a file is the one used next.
inline void merge_certificates(std::vector<net::TlsCertificateInfo>& into,
                               const std::vector<net::TlsCertificateInfo>& from) {
  for (const auto& c : from) {
    auto it = std::find_if(into.begin(), into.end(),
                           [&](const net::TlsCertificateInfo& m) { return m.path == c.path; });
    if (it == into.end()) {
      into.push_back(c);
    } else if (c.not_after > it->not_after) {
      *it = c;
    }
  }
}

// A TLS listener's handshakes and allow-list refusals, and the certificates it serves now.
struct TlsListenerStats {
  net::TlsHandshakeCounters handshakes{};  // by net::TlsHandshakeResult
  uint64_t authz_denied = 0;               // calls refused by allowed_identities
  // Filled when the stats are collected (not a counter): what the worker's context serves.
  std::vector<net::TlsCertificateInfo> certificates;

  void add(const TlsListenerStats& o) {
    for (size_t i = 0; i < handshakes.size(); ++i) handshakes[i] += o.handshakes[i];
    authz_denied += o.authz_denied;
    merge_certificates(certificates, o.certificates);
  }
};

// A listener's calls as they end (all of them: also those answered before a cluster was chosen),
// filled by the metrics observer (proxy/call_event.h).
struct ListenerStats {
  uint64_t calls_total = 0;
  std::array<uint64_t, kStatusSlots> by_status{};
  Histogram duration = duration_histogram();  // microseconds, request headers to stream end

  void add(const ListenerStats& o) {
    calls_total += o.calls_total;
    for (size_t i = 0; i < kStatusSlots; ++i) by_status[i] += o.by_status[i];
    duration.add(o.duration);
  }
};

#define H2MESH_WORKER_COUNTERS(X)                                                                \
  X(downstream_connections_total, "h2mesh_downstream_connections_total", "", counter,            \
    "Client connections accepted.")                                                              \
  X(downstream_connections_active, "h2mesh_downstream_connections_active", "", gauge,            \
    "Client connections open now.")                                                              \
  X(downstream_protocol_errors, "h2mesh_downstream_protocol_errors_total", "", counter,          \
    "Client connections closed for a protocol error.")                                           \
  X(downstream_max_age_goaways, "h2mesh_downstream_max_age_goaways_total", "", counter,          \
    "Client connections sent GOAWAY at max_connection_age.")                                     \
  X(downstream_idle_closed, "h2mesh_downstream_idle_closed_total", "", counter,                  \
    "Client connections closed by idle_timeout.")                                                \
  X(downstream_header_timeouts, "h2mesh_downstream_header_timeouts_total", "", counter,          \
    "Prefaces or request headers that did not arrive within header_timeout.")                    \
  X(downstream_header_limit, "h2mesh_downstream_header_limit_total", "", counter,                \
    "Request header blocks refused: over max_header_list_bytes or max_header_fields.")           \
  X(downstream_flood_goaways, "h2mesh_downstream_flood_goaways_total", "", counter,              \
    "Client connections closed with ENHANCE_YOUR_CALM: a frame budget ran out.")                 \
  X(calls_no_route, "h2mesh_calls_no_route_total", "", counter,                                  \
    "Calls answered UNIMPLEMENTED: no route.")                                                   \
  X(calls_malformed_timeout, "h2mesh_calls_malformed_timeout_total", "", counter,                \
    "Calls answered INTERNAL (HTTP 400): malformed grpc-timeout.")

struct WorkerStats {
  H2MESH_WORKER_COUNTERS(H2MESH_STAT_MEMBER)
  std::map<std::string, ListenerStats> listeners;  // by listener name
  std::map<std::string, ClusterStats> clusters;
  std::map<RateLimitKey, uint64_t> rate_limited;  // calls refused by each configured rate limit
  MeshStats mesh;
  std::map<std::string, TlsListenerStats> tls;  // by listener name; TLS listeners only
  // By cluster name: the client certificate each cluster with `tls.cert` presents (filled when
  // the stats are collected, once the cluster's files were loaded by a first connect).
  std::map<std::string, std::vector<net::TlsCertificateInfo>> cluster_certificates;

  void add(const WorkerStats& o) {
    H2MESH_WORKER_COUNTERS(H2MESH_STAT_ADD)
    for (const auto& [k, v] : o.listeners) listeners[k].add(v);
    for (const auto& [k, v] : o.clusters) clusters[k].add(v);
    for (const auto& [k, v] : o.rate_limited) rate_limited[k] += v;
    mesh.add(o.mesh);
    for (const auto& [k, v] : o.tls) tls[k].add(v);
    for (const auto& [k, v] : o.cluster_certificates) merge_certificates(cluster_certificates[k], v);
  }
};

}  // namespace h2mesh::proxy
