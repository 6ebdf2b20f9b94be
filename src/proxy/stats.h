#pragma once

// Plain per-worker counters: no atomics, only the owning worker writes them. The admin server
// gets copies by posting a closure to each worker (server/worker.h) and adds them up.

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/histogram.h"
#include "common/time.h"
#include "net/tls_client.h"
#include "net/tls_context.h"
#include "net/tls_transport.h"
#include "proxy/tcp_relay.h"

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
  // Microseconds. duration: calls whose last attempt went to this endpoint, from the client's
  // request headers to the end of the stream; upstream_duration: each attempt sent here, from
  // the pick to its response's end (or its failure).
  Histogram duration = duration_histogram();
  Histogram upstream_duration = duration_histogram();
  uint64_t upstream_connections = 0;        // open now
  uint64_t upstream_connections_total = 0;  // ever opened
  uint64_t connect_failures = 0;
  uint64_t upstream_resets = 0;
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
  // Microseconds, as EndpointStats's, over all the cluster's calls and attempts.
  Histogram duration = duration_histogram();
  Histogram upstream_duration = duration_histogram();
  // Calls by how many attempts they made: [n-1] for n attempts, the last slot for as many or more.
  std::array<uint64_t, 8> attempts{};
  uint64_t no_endpoint = 0;       // calls failed because no endpoint could take them
  uint64_t pending_overflow = 0;  // calls failed because the pending queue was full
  uint64_t circuit_breaker_overflow = 0;  // calls failed by max_calls / max_calls_per_endpoint
  uint64_t retries_connect_failure = 0;   // retries after a failed or refused connect
  uint64_t retries_refused_stream = 0;    // retries after REFUSED_STREAM / GOAWAY
  uint64_t retries_status = 0;            // retries after a grpc-status in retry_on
  uint64_t retry_budget_exhausted = 0;    // retries not made: the budget was spent
  uint64_t deadline_exceeded = 0;         // calls the proxy ended at their deadline
  uint64_t response_header_limit = 0;  // responses refused: headers/trailers over the limits
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
    no_endpoint += o.no_endpoint;
    pending_overflow += o.pending_overflow;
    circuit_breaker_overflow += o.circuit_breaker_overflow;
    retries_connect_failure += o.retries_connect_failure;
    retries_refused_stream += o.retries_refused_stream;
    retries_status += o.retries_status;
    retry_budget_exhausted += o.retry_budget_exhausted;
    deadline_exceeded += o.deadline_exceeded;
    response_header_limit += o.response_header_limit;
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

// Mesh mode: what became of the connections redirected to the outbound port.
struct MeshStats {
  uint64_t http2_connections = 0;    // to a Service's cluster IP, HTTP/2: balanced per call
  uint64_t unknown_destination = 0;  // relayed: not a Service's cluster IP and port
  uint64_t opaque = 0;               // relayed: an opaque port, never inspected
  uint64_t detected_other = 0;       // relayed: not HTTP/2, or nothing within detect_timeout
  uint64_t loops_refused = 0;        // the original destination was the outbound port itself
  uint64_t no_destination = 0;       // no original destination could be read
  RelayStats relay;

  // The inbound side: connections redirected to the inbound port, by what became of them.
  uint64_t inbound_mtls = 0;               // mesh mTLS terminated (handshake started)
  uint64_t inbound_plaintext = 0;          // clear-text HTTP/2 accepted (permissive)
  uint64_t inbound_relayed = 0;            // clear text, not HTTP/2 (or TLS without mesh.tls)
  uint64_t inbound_refused_plaintext = 0;  // clear text closed (strict)
  uint64_t inbound_loops_refused = 0;      // the original destination was an h2mesh port
  uint64_t inbound_no_destination = 0;
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
    inbound_mtls += o.inbound_mtls;
    inbound_plaintext += o.inbound_plaintext;
    inbound_relayed += o.inbound_relayed;
    inbound_refused_plaintext += o.inbound_refused_plaintext;
    inbound_loops_refused += o.inbound_loops_refused;
    inbound_no_destination += o.inbound_no_destination;
    for (const auto& [identity, n] : o.inbound_calls) count_inbound_call(identity, n);
    http2_connections += o.http2_connections;
    unknown_destination += o.unknown_destination;
    opaque += o.opaque;
    detected_other += o.detected_other;
    loops_refused += o.loops_refused;
    no_destination += o.no_destination;
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

struct WorkerStats {
  uint64_t downstream_connections_total = 0;
  uint64_t downstream_connections_active = 0;
  uint64_t downstream_protocol_errors = 0;
  uint64_t downstream_max_age_goaways = 0;  // connections sent GOAWAY at max_connection_age
  uint64_t downstream_idle_closed = 0;      // connections closed by idle_timeout
  uint64_t downstream_header_timeouts = 0;  // prefaces or request headers too slow
  uint64_t downstream_header_limit = 0;     // request header blocks over the listener's limits
  uint64_t downstream_flood_goaways = 0;    // connections closed: a frame budget ran out
  uint64_t calls_no_route = 0;
  uint64_t calls_malformed_timeout = 0;  // answered INTERNAL: grpc-timeout not valid
  std::map<std::string, ClusterStats> clusters;
  std::map<RateLimitKey, uint64_t> rate_limited;  // calls refused by each configured rate limit
  MeshStats mesh;
  std::map<std::string, TlsListenerStats> tls;  // by listener name; TLS listeners only
  // By cluster name: the client certificate each cluster with `tls.cert` presents (filled when
  // the stats are collected, once the cluster's files were loaded by a first connect).
  std::map<std::string, std::vector<net::TlsCertificateInfo>> cluster_certificates;

  void add(const WorkerStats& o) {
    downstream_connections_total += o.downstream_connections_total;
    downstream_connections_active += o.downstream_connections_active;
    downstream_protocol_errors += o.downstream_protocol_errors;
    downstream_max_age_goaways += o.downstream_max_age_goaways;
    downstream_idle_closed += o.downstream_idle_closed;
    downstream_header_timeouts += o.downstream_header_timeouts;
    downstream_header_limit += o.downstream_header_limit;
    downstream_flood_goaways += o.downstream_flood_goaways;
    calls_no_route += o.calls_no_route;
    calls_malformed_timeout += o.calls_malformed_timeout;
    for (const auto& [k, v] : o.clusters) clusters[k].add(v);
    for (const auto& [k, v] : o.rate_limited) rate_limited[k] += v;
    mesh.add(o.mesh);
    for (const auto& [k, v] : o.tls) tls[k].add(v);
    for (const auto& [k, v] : o.cluster_certificates) merge_certificates(cluster_certificates[k], v);
  }
};

}  // namespace h2mesh::proxy
