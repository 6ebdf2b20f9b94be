#pragma once

// Plain configuration structs. Parsed and validated by config/parser.h; immutable once built and
// shared with workers as std::shared_ptr<const Config>.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace h2mesh::config {

using Millis = std::chrono::milliseconds;

// An IP literal and a port. IPv6 literals are written "[::1]:8080" in YAML and stored without
// brackets in `host`.
struct SocketAddress {
  std::string host;
  uint16_t port = 0;
  bool is_ipv6() const { return host.find(':') != std::string::npos; }
  std::string to_string() const {
    return is_ipv6() ? "[" + host + "]:" + std::to_string(port) : host + ":" + std::to_string(port);
  }
  bool operator==(const SocketAddress&) const = default;
};

// Empty strings match anything. `prefix` and `path` are mutually exclusive.
struct RouteMatch {
  std::string authority;  // exact :authority, port included if the client sends one
  std::string prefix;     // path prefix, e.g. "/helloworld.Greeter/"
  std::string path;       // full method, e.g. "/helloworld.Greeter/SayHello"
};

// When and how a failed call attempt is tried again (on another endpoint when there is one).
// Attempts the backend provably never processed (connect failure, REFUSED_STREAM, streams above
// a GOAWAY's last stream id) are always retryable; `retry_on` adds grpc-status codes.
struct RetryPolicy {
  static constexpr uint32_t kMaxAttemptsLimit = 10;  // the largest max_attempts accepted
  uint32_t max_attempts = 3;  // first attempt included; 1 disables retries
  std::vector<int> retry_on;  // grpc-status codes (e.g. 14 UNAVAILABLE) also retried
  Millis backoff_base{25};    // exponential backoff with full jitter between attempts
  Millis backoff_max{250};
  double budget_ratio = 0.2;            // retries may add at most this share of calls (10 s window)
  uint32_t budget_min_per_second = 10;  // ... and always this many per second
  uint32_t replay_buffer_bytes = 64 * 1024;  // a request body larger than this is not retried
  bool operator==(const RetryPolicy&) const = default;
};

// A token bucket for the whole proxy (all workers together): `calls_per_second` refill and at
// most `burst` calls at once. Calls over it are answered RESOURCE_EXHAUSTED without upstream work.
struct RateLimit {
  double calls_per_second = 0;  // > 0
  uint32_t burst = 0;           // >= 1; absent in YAML: one second of calls (at least 1)
  bool operator==(const RateLimit&) const = default;
};

struct Route {
  std::optional<RouteMatch> match;  // absent: the default route (matches every call)
  std::string cluster;
  // Upper bound of a call's deadline: a longer grpc-timeout is cut to it, and a call without
  // one gets it. 0: no bound (the client's deadline, if any, is the only one).
  Millis max_timeout{0};
  RetryPolicy retry;
  std::optional<RateLimit> rate_limit;  // absent: no limit of its own
  int line = 0;  // config line, for logs
};

// A token bucket of frames: `burst` at once, refilled at `per_second`. burst 0: no limit.
struct FrameBudget {
  uint32_t burst = 0;
  uint32_t per_second = 0;
  bool operator==(const FrameBudget&) const = default;
};

// Per-connection budgets of HTTP/2 frames that cost work but carry nothing; when one runs out the
// connection gets GOAWAY(ENHANCE_YOUR_CALM). The defaults are far above what a gRPC peer sends.
struct FloodLimits {
  // DATA without payload and without END_STREAM, CONTINUATION without payload.
  FrameBudget empty_frames{100, 10};
  FrameBudget priority{100, 10};
  FrameBudget settings{100, 10};  // SETTINGS without ACK
  // PINGs (without ACK) that arrive when we sent no HEADERS or DATA since the previous PING:
  // gRPC's BDP pings follow data and are never charged.
  FrameBudget ping{100, 10};
  // RST_STREAM from a client. Each stream that ends normally gives one back, so a client that
  // cancels a share of many calls never runs out; one that opens and resets (rapid reset) does.
  FrameBudget rst_stream{200, 20};
  // RST_STREAM(STREAM_CLOSED) we send for DATA on closed streams. Past it such DATA is ignored
  // (no GOAWAY): the peer cannot make us write without bound.
  FrameBudget closed_stream_answers{100, 10};
  bool operator==(const FloodLimits&) const = default;
};

// HTTP/2 PING keepalive of a connection: a PING after `interval` without a frame from the peer;
// no ACK within `timeout` closes the connection. interval 0: off.
struct Keepalive {
  Millis interval{0};
  Millis timeout{20000};
  bool operator==(const Keepalive&) const = default;
};

// Limits of one received header block (headers or trailers), decoded: RFC 9113 section 6.5.2
// counts name + value + 32 bytes per field. Advertised as SETTINGS_MAX_HEADER_LIST_SIZE.
constexpr uint32_t kDefaultMaxHeaderListBytes = 16 * 1024;
constexpr uint32_t kMaxHeaderListBytesLimit = 1024 * 1024;
constexpr uint32_t kDefaultMaxHeaderFields = 100;  // each cookie crumb counts as one

// A serving certificate: a PEM chain (leaf first) and its unencrypted PEM private key.
struct TlsCertificate {
  std::string cert;
  std::string key;
  bool operator==(const TlsCertificate&) const = default;
};

// TLS on a listener (`listeners[].tls`). Absent: the listener speaks clear-text HTTP/2.
struct ListenerTls {
  // At least one. With several, the client's SNI picks the first whose SANs match it; the first
  // is the default (no SNI, or no match).
  std::vector<TlsCertificate> certificates;
  std::string ca;  // PEM bundle client certificates are verified against; empty: none asked for
  bool require_client_cert = false;  // needs `ca`
  // Offered in order; always contains "h2". A client offering ALPN without any of them fails the
  // handshake; one offering no ALPN at all is accepted (its first bytes must still be HTTP/2).
  std::vector<std::string> alpn = {"h2"};
  // Needs `ca`. Empty: every client the handshake accepted may call. Otherwise a call is allowed
  // only when the client certificate has one of these as a URI SAN or a DNS SAN (exact match).
  std::vector<std::string> allowed_identities;
  bool operator==(const ListenerTls&) const = default;
};

struct Listener {
  std::string name;
  SocketAddress address;
  uint32_t max_concurrent_streams = 1024;  // advertised to clients in SETTINGS
  std::vector<Route> routes;               // first match wins; no match → UNIMPLEMENTED
  // After this age (±10% jitter) a client connection gets GOAWAY so the client reconnects (and a
  // connection-level balancer in front of h2mesh can spread clients again). 0: never.
  Millis max_connection_age{0};
  Millis max_connection_age_grace{30000};  // then calls still in flight are reset
  Millis idle_timeout{0};  // a client connection without calls for this long is closed; 0: never
  Millis header_timeout{10000};  // a call's request headers (and a new connection's preface) must
                                 // arrive within this
  uint32_t max_header_list_bytes = kDefaultMaxHeaderListBytes;  // request headers, trailers
  uint32_t max_header_fields = kDefaultMaxHeaderFields;
  FloodLimits flood_limits;
  // Clients that vanished without a FIN (a node gone, a partition). Off by default; when on,
  // idle connections are pinged too (clients do not police the pings they receive).
  Keepalive keepalive;
  std::optional<RateLimit> rate_limit;  // for all calls of the listener, on top of the routes' ones
  std::optional<ListenerTls> tls;       // absent: clear text
};

enum class LbPolicy { RoundRobin, Random, LeastRequest };
const char* lb_policy_name(LbPolicy p);

struct Endpoint {
  SocketAddress address;
  uint32_t weight = 1;
  bool operator==(const Endpoint&) const = default;
};

// Active health checks with grpc.health.v1.Health/Check, run once per endpoint by the main thread.
struct HealthCheck {
  bool enabled = false;
  std::string service;  // HealthCheckRequest.service; "" = the whole server
  Millis interval{5000};
  Millis interval_jitter{1000};  // each check waits interval + uniform(0, jitter)
  Millis timeout{1000};
  uint32_t healthy_threshold = 2;    // consecutive successes to return to the rotation
  uint32_t unhealthy_threshold = 3;  // consecutive failures to leave it
  bool operator==(const HealthCheck&) const = default;
};

// Passive outlier detection from real calls.
struct OutlierDetection {
  bool enabled = true;
  uint32_t consecutive_failures = 5;  // connect failures, resets and `failure_statuses` in a row
  std::vector<int> failure_statuses = {14, 13};  // UNAVAILABLE, INTERNAL
  Millis base_ejection_time{30000};              // multiplied by the number of times it was ejected
  Millis max_ejection_time{300000};
  uint32_t max_ejection_percent = 50;  // at most this share of the cluster is ejected at once
  bool operator==(const OutlierDetection&) const = default;
};

struct CircuitBreakers {
  uint32_t max_calls = 0;               // calls in flight to the cluster; 0: no limit
  uint32_t max_calls_per_endpoint = 0;  // 0: no limit
  bool operator==(const CircuitBreakers&) const = default;
};

// Where a cluster's endpoints come from. Static: the `endpoints` list. DNS: all A/AAAA records
// of a name (a headless Service), re-resolved. Kubernetes: the EndpointSlices of a Service,
// listed and watched from the API server.
enum class DiscoveryType { Static, Dns, Kubernetes };

struct DnsDiscovery {
  std::string name;                      // e.g. greeter-headless.grpcdemo.svc.cluster.local
  uint16_t port = 0;                     // required: the port every record is reached on
  std::vector<SocketAddress> resolvers;  // empty: the system's (/etc/resolv.conf)
  Millis min_interval{1000};             // re-resolve no sooner than this ...
  Millis max_interval{30000};            // ... and no later than this, within the records' TTL
  Millis timeout{2000};                  // per query
  bool operator==(const DnsDiscovery&) const = default;
};

struct KubernetesDiscovery {
  std::string namespace_;       // YAML key `namespace`; empty: the pod's own namespace
  std::string service;          // label kubernetes.io/service-name of the EndpointSlices
  std::string port;             // port name (e.g. "grpc") or number; empty: the slice's only port
  std::string kubeconfig;       // empty: in-cluster credentials
  Millis backoff_base{500};     // reconnect backoff of list/watch
  Millis backoff_max{30000};
  bool operator==(const KubernetesDiscovery&) const = default;
};

struct Discovery {
  DiscoveryType type = DiscoveryType::Static;
  DnsDiscovery dns;
  KubernetesDiscovery kubernetes;
  bool operator==(const Discovery&) const = default;
};

// A cluster's TLS origination (`clusters[].tls`): h2mesh connects to the endpoints over TLS,
// offers ALPN h2 and requires it, and verifies the chain and a name of the certificate.
struct ClusterTls {
  std::string ca;           // PEM bundle to verify the chain against; "" = the system store
  std::string cert;         // optional client certificate chain (mTLS), with `key`
  std::string key;
  std::string server_name;  // SNI, and the DNS name verified unless `san` is given
  // Names the backend's certificate must carry (any one): DNS names, IP addresses or URIs such as
  // SPIFFE IDs. With neither this nor server_name, the endpoint's IP address (an IP SAN).
  std::vector<std::string> san;
  bool operator==(const ClusterTls&) const = default;
};

struct Cluster {
  std::string name;
  LbPolicy lb_policy = LbPolicy::RoundRobin;
  std::vector<Endpoint> endpoints;
  Millis connect_timeout{1000};
  // Per worker and endpoint: connections opened when every open one is at the backend's
  // SETTINGS_MAX_CONCURRENT_STREAMS. Calls beyond wait (bounded by max_pending_calls).
  uint32_t max_connections_per_endpoint = 8;
  uint32_t max_pending_calls = 1024;  // per worker and endpoint
  Millis reconnect_backoff_base{100};
  Millis reconnect_backoff_max{5000};
  Millis idle_timeout{300000};  // an upstream connection without calls for this long is closed
  // Below this share of endpoints available (healthy and not ejected), balance over all of them.
  uint32_t panic_threshold_percent = 50;
  HealthCheck health_check;
  OutlierDetection outlier_detection;
  Discovery discovery;  // with DNS or Kubernetes, `endpoints` must be empty
  CircuitBreakers circuit_breakers;
  // What a backend may send back in one header block (response headers, trailers).
  uint32_t max_header_list_bytes = kDefaultMaxHeaderListBytes;
  uint32_t max_header_fields = kDefaultMaxHeaderFields;
  // Backends that stop answering (SIGSTOP, a black-holed node): on by default, pinging only
  // connections with calls in flight.
  Keepalive keepalive{Millis(30000), Millis(10000)};
  std::optional<ClusterTls> tls;  // absent: clear-text HTTP/2 (h2c)
  bool operator==(const Cluster&) const = default;
};

struct Admin {
  bool enabled = true;
  SocketAddress address{"127.0.0.1", 9901};
  // The /metrics series of an endpoint that left its cluster stay this long after its last call
  // and connection ended, so that scrapes see its final counts; then they go.
  Millis endpoint_stats_retention{120000};
};

struct Buffers {
  // HTTP/2 stream window we advertise on both sides: the most a single call may have buffered
  // in the proxy per direction.
  uint32_t stream_window_bytes = 1 << 20;
  // Connection-level window we advertise on both sides.
  uint32_t connection_window_bytes = 16 << 20;
};

// One Service's calls in mesh mode: its cluster's settings (name, endpoints and discovery are
// filled in per Service from the API) and the route settings of its calls.
struct MeshServiceSettings {
  Cluster cluster;
  Millis max_timeout{0};  // as Route::max_timeout
  RetryPolicy retry;
  bool operator==(const MeshServiceSettings&) const = default;
};

// Mesh mTLS between sidecars (`mesh.tls`, or H2MESH_MESH_CERT/_KEY/_CA and H2MESH_MTLS_MODE).
// The pod's own certificate (its SPIFFE ID as URI SAN) serves the inbound side and is the client
// certificate of the calls the sidecar originates; `ca` is the mesh's trust bundle both ways.
struct MeshTls {
  enum class Mode { Permissive, Strict };
  std::string cert;  // PEM chain, leaf first
  std::string key;
  std::string ca;
  // Permissive: clear text arriving at the pod is still accepted (peers without a sidecar);
  // strict: only mTLS from a peer sidecar, anything else is closed.
  Mode mode = Mode::Permissive;
  // A peer's certificate must carry a URI SAN spiffe://<trust_domain>/...
  std::string trust_domain = "cluster.local";
  // Empty: every verified peer of the trust domain may call the app. Otherwise only these
  // identities (URI SAN, then DNS SAN, exact); the others' calls end with PERMISSION_DENIED.
  std::vector<std::string> allowed_identities;
  bool operator==(const MeshTls&) const = default;
};

// Mesh mode (`h2mesh run --mesh`, or a `mesh:` block): the pod's outbound TCP arrives redirected
// on `outbound_port`; HTTP/2 to a Service's cluster IP is balanced per call over the Service's
// endpoints, which come from the Kubernetes API; everything else is relayed to where it was going.
struct Mesh {
  bool enabled = false;
  uint16_t outbound_port = 15001;
  // The first bytes decide: the HTTP/2 preface within this → per-call balancing; anything else,
  // or nothing (a server that speaks first) → TCP relay.
  Millis detect_timeout{100};
  // Destination ports never inspected, always relayed (server-speaks-first and binary protocols).
  std::vector<uint16_t> opaque_ports = {25, 587, 3306, 4444, 5432, 6379, 9300, 11211};
  std::vector<std::string> namespaces;  // empty: every namespace the credentials may list
  std::string kubeconfig;               // empty: in-cluster credentials (service account)
  Millis backoff_base{500};             // re-list/re-watch backoff against the API server
  Millis backoff_max{30000};
  // A Service's per-worker pools and LB state are made on its first call and dropped after this
  // long without calls.
  Millis cluster_idle_timeout{600000};
  Millis relay_connect_timeout{10000};  // TCP relay: connecting to the original destination
  Millis relay_idle_timeout{0};         // TCP relay: closed after this long without bytes; 0: never
  // TCP arriving at the pod, redirected by `h2mesh iptables install --inbound-port`: mesh mTLS
  // is terminated here and the calls go on to the app in clear text.
  uint16_t inbound_port = 15006;
  std::optional<MeshTls> tls;  // absent: no mesh mTLS (everything inbound is clear text)
  // Client connections on the outbound port (limits, keepalive); `routes` and `address` unused.
  Listener connection;
  MeshServiceSettings defaults;
  // Per Service, keyed "name.namespace": the defaults with what the override sets.
  std::map<std::string, MeshServiceSettings> services;

  const MeshServiceSettings& settings_for(const std::string& service,
                                          const std::string& namespace_) const {
    auto it = services.find(service + "." + namespace_);
    return it == services.end() ? defaults : it->second;
  }
};

// `access_log:` (docs/observability.md#access-log): one line per call, written by a thread of
// its own from per-worker queues. Absent: no access log (the workers do nothing per call).
struct AccessLog {
  enum class Format { Json, Text };
  std::string path;  // a file (opened for append), or "stdout"
  Format format = Format::Json;
  // Names of H2MESH_CALL_FIELDS (proxy/call_event.h), "time" and "trace_id", in the order
  // written; empty: all of them ("time" first, "trace_id" last).
  std::vector<std::string> fields;
  double sample_ratio = 1.0;  // share of calls logged, 0..1
  // Per worker: lines formatted and waiting for the writer thread (rounded up to a power of
  // two). When full, lines are dropped and counted. Changes only with a restart.
  int64_t queue_bytes = int64_t{1} << 20;
  bool operator==(const AccessLog&) const = default;
};

// Distributed tracing (`tracing:`, observe/): a span per call and per attempt, exported with
// OTLP over HTTP (protobuf). Absent: no span, traceparent passes through untouched.
struct Tracing {
  bool enabled = false;
  std::string otlp_endpoint;  // as written: http://host:port/path
  std::string otlp_host;      // parsed from it (a name, an IPv4 or an IPv6 address)
  uint16_t otlp_port = 4318;
  std::string otlp_path = "/v1/traces";
  double sample_ratio = 1.0;  // of new traces; a caller's sampled flag is always followed
  std::string service_name = "h2mesh";
  uint32_t batch_size = 512;     // spans per export request at most
  Millis batch_interval{1000};   // a batch leaves at least this often while spans wait
  uint32_t queue_size = 2048;    // spans waiting per worker; more are dropped and counted
  Millis export_timeout{10000};  // one export request, connect to answer
  bool operator==(const Tracing&) const = default;
};

struct Config {
  std::string source;    // file the config came from (for messages)
  uint32_t workers = 0;  // 0: one per core
  std::string log_level = "info";
  Millis drain_timeout{30000};
  Admin admin;
  Buffers buffers;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;
  Mesh mesh;  // mesh.enabled: listeners and clusters may be empty
  std::optional<AccessLog> access_log;  // absent: off
  Tracing tracing;

  const Cluster* find_cluster(const std::string& name) const {
    for (const auto& c : clusters)
      if (c.name == name) return &c;
    return nullptr;
  }
};

}  // namespace h2mesh::config
