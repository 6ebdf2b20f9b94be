#include "admin/render.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <span>
#include <string_view>
#include <vector>

#include "grpc/status.h"
#include "net/tls_client.h"
#include "observe/trace_counters.h"

namespace h2mesh::admin {
namespace {

const char* status_label(size_t slot) {
  return slot == proxy::kNoStatusSlot ? "NONE" : grpc::status_name(static_cast<int>(slot));
}

// Appends the exposition text straight into one string: a scrape with hundreds of endpoints
// writes tens of thousands of lines, so no line builds temporaries of its own.
class Prom {
 public:
  Prom() { out_.reserve(64 * 1024); }
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // `extra`: one more label ("" for none), e.g. a table row's.
  void sample(const char* name, std::string_view labels, uint64_t value,
              std::string_view extra = {}) {
    out_ += name;
    if (!labels.empty() || !extra.empty()) {
      out_ += '{';
      out_ += labels;
      if (!labels.empty() && !extra.empty()) out_ += ',';
      out_ += extra;
      out_ += '}';
    }
    out_ += ' ';
    number(value);
    out_ += '\n';
  }
  // One histogram series: `_bucket`s at the bounds `le` with the cumulative counts `at`, `+Inf`
  // (= count), `_sum` (microseconds written as seconds, or as is) and `_count`.
  void histogram(const char* name, std::string_view labels, std::span<const char* const> le,
                 std::span<const uint64_t> at, uint64_t count, uint64_t sum, bool sum_in_micros) {
    for (size_t i = 0; i <= le.size(); ++i) {
      out_ += name;
      out_ += "_bucket{";
      out_ += labels;
      if (!labels.empty()) out_ += ',';
      out_ += "le=\"";
      out_ += i < le.size() ? le[i] : "+Inf";
      out_ += "\"} ";
      number(i < le.size() ? at[i] : count);
      out_ += '\n';
    }
    suffixed(name, "_sum", labels);
    if (sum_in_micros) {
      seconds(sum);
    } else {
      number(sum);
    }
    out_ += '\n';
    suffixed(name, "_count", labels);
    number(count);
    out_ += '\n';
  }
  void number(uint64_t v) {
    char buf[24];
    out_.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  }
  // Microseconds as seconds, exactly ("1.25", "0.000125").
  void seconds(uint64_t us) {
    number(us / 1000000);
    if (uint64_t frac = us % 1000000) {
      char digits[7] = "000000";
      for (int i = 5; i >= 0; --i, frac /= 10) digits[i] = static_cast<char>('0' + frac % 10);
      size_t n = 6;
      while (digits[n - 1] == '0') --n;
      out_ += '.';
      out_.append(digits, n);
    }
  }
  std::string take() { return std::move(out_); }

  // A cluster's labels: its name, and for a mesh Service's cluster the Service and namespace.
  void set_mesh(const proxy::MeshTable* mesh) { mesh_ = mesh; }
  std::string cluster(const std::string& name) const;

 private:
  void suffixed(const char* name, const char* suffix, std::string_view labels) {
    out_ += name;
    out_ += suffix;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
  }

  std::string out_;
  const proxy::MeshTable* mesh_ = nullptr;
};

std::string label(const char* k, const std::string& v) {
  std::string out = k;
  out += "=\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string Prom::cluster(const std::string& name) const {
  std::string out = label("cluster", name);
  // Appended piece by piece: `"," + std::string` trips g++ 12's -Wrestrict in Release builds.
  if (const proxy::MeshRoute* route = mesh_ ? mesh_->find_cluster(name) : nullptr) {
    out += ',';
    out += label("service", route->service);
    out += ',';
    out += label("namespace", route->namespace_);
  }
  return out;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

const cluster::HostHealth* find_health(const HealthView& health, const std::string& cluster,
                                       const std::string& endpoint) {
  auto c = health.find(cluster);
  if (c == health.end()) return nullptr;
  auto e = c->second.find(endpoint);
  return e == c->second.end() ? nullptr : &e->second;
}


std::string status_json(const proxy::CallCounters& c) {
  std::string out = "{";
  bool first = true;
  for (size_t i = 0; i < proxy::kStatusSlots; ++i) {
    if (c.by_status[i] == 0) continue;
    if (!first) out += ",";
    first = false;
    out += json_string(status_label(i)) + ":" + std::to_string(c.by_status[i]);
  }
  return out + "}";
}

// The Service map's watch of the Kubernetes API: what an operator looks at when the mesh stops
// following the cluster (API server down, slow, answering garbage or 410 Gone).
void render_api(Prom& p, const discovery::ServiceMapWatcher::Counters& api) {
  using Collection = discovery::ServiceMapWatcher::Counters::Collection;
  struct Counter {
    const char* name;
    const char* help;
    uint64_t Collection::*field;
  };
  static const Counter kCounters[] = {
      {"h2mesh_mesh_api_lists_total", "Complete LISTs applied: the first, then every re-list.",
       &Collection::lists},
      {"h2mesh_mesh_api_watches_total", "WATCH requests the API server accepted.",
       &Collection::watches},
      {"h2mesh_mesh_api_events_total", "ADDED, MODIFIED and DELETED watch events applied.",
       &Collection::events},
      {"h2mesh_mesh_api_failures_total",
       "Failed API requests and cut watches (each retried after a backoff); the last map stays.",
       &Collection::failures},
      {"h2mesh_mesh_api_relists_total",
       "LISTs forced by 410 Gone (history compacted) or an unreadable watch event.",
       &Collection::relists},
  };
  for (const Counter& c : kCounters) {
    p.family(c.name, "counter", c.help);
    p.sample(c.name, label("collection", "services"), api.services.*c.field);
    p.sample(c.name, label("collection", "endpointslices"), api.endpoint_slices.*c.field);
  }
  p.family("h2mesh_mesh_api_objects", "gauge", "Objects cached from the API server, by kind.");
  p.sample("h2mesh_mesh_api_objects", label("collection", "services"), api.services_known);
  p.sample("h2mesh_mesh_api_objects", label("collection", "endpointslices"), api.slices_known);
  p.family("h2mesh_mesh_maps_published_total", "counter",
           "Service maps published to the workers: the first, then one per batch of changes.");
  p.sample("h2mesh_mesh_maps_published_total", "", api.maps_published);
}

}  // namespace

namespace {
// TLS listeners: handshakes by result, allow-list refusals, and the notAfter of each serving
// certificate in use (an alert can fire days before it expires).
void render_listener_tls(Prom& p, const proxy::WorkerStats& s) {
  if (s.tls.empty() && s.cluster_certificates.empty()) return;
  if (!s.tls.empty()) {
    p.family("h2mesh_tls_handshakes_total", "counter",
             "TLS handshakes of client connections, by how they ended.");
    for (const auto& [name, tls] : s.tls)
      for (size_t i = 0; i < net::kTlsHandshakeResults; ++i)
        p.sample("h2mesh_tls_handshakes_total",
                 label("listener", name) + "," +
                     label("result",
                           net::tls_handshake_result_name(static_cast<net::TlsHandshakeResult>(i))),
                 tls.handshakes[i]);
    p.family("h2mesh_authz_denied_total", "counter",
             "Calls answered PERMISSION_DENIED: the client's identity is not on the listener's "
             "allowed_identities.");
    for (const auto& [name, tls] : s.tls)
      p.sample("h2mesh_authz_denied_total", label("listener", name), tls.authz_denied);
  }
  p.family(
      "h2mesh_tls_certificate_expiry_timestamp_seconds", "gauge",
      "notAfter (Unix time) of each certificate being served (listeners, the mesh) or presented "
      "(clusters' client certificates).");
  for (const auto& [name, tls] : s.tls)
    for (const auto& cert : tls.certificates)
      p.sample("h2mesh_tls_certificate_expiry_timestamp_seconds",
               // The mesh's inbound side serves the pod's mesh certificate.
               label("owner", name == "mesh-inbound" ? "mesh" : "listener/" + name) + "," +
                   label("cert", cert.path),
               static_cast<uint64_t>(std::max<int64_t>(cert.not_after, 0)));
  for (const auto& [name, certificates] : s.cluster_certificates)
    for (const auto& cert : certificates)
      p.sample("h2mesh_tls_certificate_expiry_timestamp_seconds",
               label("owner", "cluster/" + name) + "," + label("cert", cert.path),
               static_cast<uint64_t>(std::max<int64_t>(cert.not_after, 0)));
}
}  // namespace

namespace {

// A row of a counter table of proxy/stats.h (H2MESH_*_COUNTERS).
template <class Stats>
struct Row {
  uint64_t Stats::*member;
  const char* name;
  const char* label;
  const char* type;
  const char* help;
};
// Expanded where `Stats` names the table's struct.
#define H2MESH_ROW(member, name, label, type, help) \
  Row<Stats>{&Stats::member, name, label, #type, help},

// The families of a table: rows that share a name next to each other are the samples of one
// family. `each_series(emit)` calls emit(labels, stats) for each series (the worker, a cluster).
template <class Stats, size_t N, class EachSeries>
void render_table(Prom& p, const Row<Stats> (&rows)[N], EachSeries each_series) {
  for (size_t first = 0; first < N;) {
    size_t end = first + 1;
    while (end < N && std::strcmp(rows[end].name, rows[first].name) == 0) ++end;
    p.family(rows[first].name, rows[first].type, rows[first].help);
    each_series([&](std::string_view labels, const Stats& stats) {
      for (size_t r = first; r < end; ++r)
        p.sample(rows[r].name, labels, stats.*rows[r].member, rows[r].label);
    });
    first = end;
  }
}

// The duration buckets /metrics shows (seconds, the 1-2.5-5 series Prometheus users expect),
// each an upper bound of duration_histogram() (microseconds): 100 us to 50 s, then +Inf.
constexpr const char* kDurationLe[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                                       "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
                                       "1",      "2.5",     "5",      "10",    "25",     "50"};
constexpr uint64_t kDurationLeMicros[] = {100,     250,     500,     1000,     2500,     5000,
                                          10000,   25000,   50000,   100000,   250000,   500000,
                                          1000000, 2500000, 5000000, 10000000, 25000000, 50000000};
constexpr size_t kDurationBounds = std::size(kDurationLe);
static_assert(std::size(kDurationLeMicros) == kDurationBounds);

// The bucket of duration_histogram() that each shown bound closes, found once.
const std::array<size_t, kDurationBounds>& duration_bucket_index() {
  static const std::array<size_t, kDurationBounds> index = [] {
    std::array<size_t, kDurationBounds> out{};
    const Histogram h = duration_histogram();
    size_t b = 0;
    for (size_t i = 0; i < kDurationBounds; ++i) {
      while (b + 2 < h.bucket_count() && h.upper_bound(b) < kDurationLeMicros[i]) ++b;
      out[i] = b;
    }
    return out;
  }();
  return index;
}

// One duration histogram series, in seconds: its buckets added up once, in one pass.
void duration_series(Prom& p, const char* name, std::string_view labels, const Histogram& h) {
  std::array<uint64_t, kDurationBounds> at{};
  const auto& index = duration_bucket_index();
  uint64_t below = 0;
  for (size_t i = 0, b = 0; i < kDurationBounds; ++i) {
    for (; b <= index[i]; ++b) below += h.bucket(b);
    at[i] = below;
  }
  p.histogram(name, labels, kDurationLe, at, h.count(), h.sum(), /*sum_in_micros=*/true);
}

// Attempts per call: ClusterStats::attempts[n-1] counts the calls that made n attempts.
void attempts_series(Prom& p, const char* name, std::string_view labels,
                     const proxy::ClusterStats& c) {
  static constexpr const char* kLe[] = {"1", "2", "3", "4", "5", "6", "7"};
  std::array<uint64_t, std::size(kLe)> at{};
  uint64_t count = 0, sum = 0;
  for (size_t n = 0; n < c.attempts.size(); ++n) {
    count += c.attempts[n];
    sum += (n + 1) * c.attempts[n];
    if (n < at.size()) at[n] = count;
  }
  p.histogram(name, labels, kLe, at, count, sum, /*sum_in_micros=*/false);
}

// Calls by grpc-status: the statuses seen, and OK always (so that a rate of errors over calls
// has both series from the start).
void status_samples(Prom& p, const char* name, const std::string& labels,
                    const std::array<uint64_t, proxy::kStatusSlots>& by_status) {
  std::string status = "grpc_status=\"";
  for (size_t i = 0; i < proxy::kStatusSlots; ++i) {
    if (by_status[i] == 0 && i != 0) continue;
    status.resize(13);
    status += status_label(i);
    status += '"';
    p.sample(name, labels, by_status[i], status);
  }
}

void render_listeners(Prom& p, const proxy::WorkerStats& s) {
  std::vector<std::string> labels;
  for (const auto& [name, l] : s.listeners) labels.push_back(label("listener", name));
  p.family("h2mesh_listener_calls_total", "counter",
           "Calls that ended on the listener (all of them, also those answered without a route).");
  size_t i = 0;
  for (const auto& [name, l] : s.listeners)
    p.sample("h2mesh_listener_calls_total", labels[i++], l.calls_total);
  p.family("h2mesh_listener_calls_by_status_total", "counter",
           "Calls that ended on the listener by grpc-status (NONE: reset without a status).");
  i = 0;
  for (const auto& [name, l] : s.listeners)
    status_samples(p, "h2mesh_listener_calls_by_status_total", labels[i++], l.by_status);
  p.family("h2mesh_listener_call_duration_seconds", "histogram",
           "Calls of the listener: from the client's request headers to the end of the stream.");
  i = 0;
  for (const auto& [name, l] : s.listeners)
    duration_series(p, "h2mesh_listener_call_duration_seconds", labels[i++], l.duration);
}

// The clusters and their endpoints with their labels, made once per scrape: every cluster and
// endpoint family reuses them.
struct EndpointSeries {
  const proxy::EndpointStats* stats;
  std::string labels;
};
struct ClusterSeries {
  const proxy::ClusterStats* stats;
  std::string labels;
  proxy::EndpointStats totals;  // over every endpoint it ever had
  std::vector<EndpointSeries> endpoints;
};

std::vector<ClusterSeries> cluster_series(const Prom& p, const proxy::WorkerStats& s) {
  std::vector<ClusterSeries> out;
  out.reserve(s.clusters.size());
  for (const auto& [name, c] : s.clusters) {
    ClusterSeries& series = out.emplace_back();
    series.stats = &c;
    series.labels = p.cluster(name);
    series.totals = proxy::endpoint_totals(c);
    series.endpoints.reserve(c.endpoints.size());
    for (const auto& [address, e] : c.endpoints)
      series.endpoints.push_back({&e, series.labels + "," + label("endpoint", address)});
  }
  return out;
}

// An endpoint counter (H2MESH_ENDPOINT_COUNTERS): per endpoint, and summed per cluster.
struct EndpointRow {
  uint64_t proxy::EndpointStats::*member;
  const char* name;
  const char* cluster_name;
  const char* type;
  const char* help;
  const char* cluster_help;
};
#define H2MESH_ENDPOINT_ROW(member, name, cluster_name, type, help, cluster_help) \
  EndpointRow{&proxy::EndpointStats::member, name, cluster_name, #type, help, cluster_help},
constexpr EndpointRow kEndpointRows[] = {H2MESH_ENDPOINT_COUNTERS(H2MESH_ENDPOINT_ROW)};
#undef H2MESH_ENDPOINT_ROW

void render_clusters(Prom& p, const std::vector<ClusterSeries>& clusters) {
  auto each_cluster = [&](auto emit) {
    for (const ClusterSeries& c : clusters) emit(c.labels, *c.stats);
  };
  p.family("h2mesh_cluster_calls_total", "counter", "Calls routed to the cluster.");
  for (const ClusterSeries& c : clusters)
    p.sample("h2mesh_cluster_calls_total", c.labels, c.stats->calls.calls_total);
  p.family("h2mesh_cluster_calls_in_flight", "gauge", "Calls of the cluster in flight.");
  for (const ClusterSeries& c : clusters)
    p.sample("h2mesh_cluster_calls_in_flight", c.labels, c.stats->calls.in_flight);
  p.family("h2mesh_cluster_calls_by_status_total", "counter",
           "Finished calls by grpc-status (NONE: reset without a status).");
  for (const ClusterSeries& c : clusters)
    status_samples(p, "h2mesh_cluster_calls_by_status_total", c.labels, c.stats->calls.by_status);
  {
    using Stats = proxy::ClusterStats;
    static const Row<Stats> kRows[] = {H2MESH_CLUSTER_COUNTERS(H2MESH_ROW)};
    render_table(p, kRows, each_cluster);
  }
  p.family("h2mesh_upstream_tls_handshakes_total", "counter",
           "TLS handshakes with a cluster's endpoints by result: ok, resumed (an earlier session "
           "accepted), verify_failed, san_mismatch, no_alpn, protocol, timeout.");
  for (const ClusterSeries& c : clusters) {
    if (!c.stats->tls) continue;
    for (size_t i = 0; i < c.stats->tls_handshakes.size(); ++i) {
      p.sample("h2mesh_upstream_tls_handshakes_total", c.labels, c.stats->tls_handshakes[i],
               label("result", net::tls_client_result_name(static_cast<net::TlsClientResult>(i))));
    }
  }
  // Sums over every endpoint the cluster ever had: they do not drop when the series of an
  // endpoint that left are retired.
  p.family("h2mesh_cluster_upstream_attempts_total", "counter",
           "Call attempts sent to the cluster's endpoints (retries included).");
  for (const ClusterSeries& c : clusters)
    p.sample("h2mesh_cluster_upstream_attempts_total", c.labels, c.totals.calls.calls_total);
  for (const EndpointRow& row : kEndpointRows) {
    if (!row.cluster_name) continue;
    p.family(row.cluster_name, row.type, row.cluster_help);
    for (const ClusterSeries& c : clusters)
      p.sample(row.cluster_name, c.labels, c.totals.*row.member);
  }
  p.family("h2mesh_cluster_call_duration_seconds", "histogram",
           "Calls of the cluster: from the client's request headers to the end of the stream "
           "(retries and backoffs included).");
  for (const ClusterSeries& c : clusters)
    duration_series(p, "h2mesh_cluster_call_duration_seconds", c.labels, c.stats->duration);
  p.family("h2mesh_cluster_upstream_duration_seconds", "histogram",
           "Attempts sent to the cluster's endpoints: from the pick of the endpoint to the end of "
           "its response (or its failure).");
  for (const ClusterSeries& c : clusters)
    duration_series(p, "h2mesh_cluster_upstream_duration_seconds", c.labels,
                    c.stats->upstream_duration);
  p.family("h2mesh_cluster_call_attempts", "histogram",
           "Attempts per call of the cluster (calls that made at least one).");
  for (const ClusterSeries& c : clusters)
    attempts_series(p, "h2mesh_cluster_call_attempts", c.labels, *c.stats);
}

void render_endpoints(Prom& p, const std::vector<ClusterSeries>& clusters) {
  p.family("h2mesh_endpoint_calls_total", "counter", "Calls sent to the endpoint.");
  for (const ClusterSeries& c : clusters)
    for (const EndpointSeries& e : c.endpoints)
      p.sample("h2mesh_endpoint_calls_total", e.labels, e.stats->calls.calls_total);
  p.family("h2mesh_endpoint_calls_in_flight", "gauge", "Calls in flight on the endpoint.");
  for (const ClusterSeries& c : clusters)
    for (const EndpointSeries& e : c.endpoints)
      p.sample("h2mesh_endpoint_calls_in_flight", e.labels, e.stats->calls.in_flight);
  for (const EndpointRow& row : kEndpointRows) {
    p.family(row.name, row.type, row.help);
    for (const ClusterSeries& c : clusters)
      for (const EndpointSeries& e : c.endpoints)
        p.sample(row.name, e.labels, e.stats->*row.member);
  }
  p.family("h2mesh_endpoint_calls_by_status_total", "counter",
           "Finished calls of the endpoint by grpc-status.");
  for (const ClusterSeries& c : clusters)
    for (const EndpointSeries& e : c.endpoints)
      status_samples(p, "h2mesh_endpoint_calls_by_status_total", e.labels,
                     e.stats->calls.by_status);
  // Only the endpoints that recorded something: an endpoint nobody called yet would add 21
  // lines of zeros per histogram, and a cluster can have hundreds.
  p.family("h2mesh_endpoint_call_duration_seconds", "histogram",
           "Calls whose last attempt went to the endpoint: from the client's request headers to "
           "the end of the stream.");
  for (const ClusterSeries& c : clusters)
    for (const EndpointSeries& e : c.endpoints)
      if (e.stats->duration.count())
        duration_series(p, "h2mesh_endpoint_call_duration_seconds", e.labels, e.stats->duration);
  p.family("h2mesh_endpoint_upstream_duration_seconds", "histogram",
           "Attempts sent to the endpoint: from its pick to the end of its response (or its "
           "failure).");
  for (const ClusterSeries& c : clusters)
    for (const EndpointSeries& e : c.endpoints)
      if (e.stats->upstream_duration.count())
        duration_series(p, "h2mesh_endpoint_upstream_duration_seconds", e.labels,
                        e.stats->upstream_duration);
}

void render_health(Prom& p, const HealthView& health) {
  struct HealthGauge {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const cluster::HostHealth&);
  };
  static const HealthGauge kHealth[] = {
      {"h2mesh_endpoint_healthy", "gauge", "1 while active health checks pass (or are off).",
       [](const cluster::HostHealth& h) -> uint64_t { return h.healthy; }},
      {"h2mesh_endpoint_ejected", "gauge", "1 while outlier detection has the endpoint ejected.",
       [](const cluster::HostHealth& h) -> uint64_t { return h.ejected; }},
      {"h2mesh_endpoint_ejections_total", "counter", "Outlier ejections of the endpoint.",
       [](const cluster::HostHealth& h) -> uint64_t { return h.ejections; }},
      {"h2mesh_endpoint_health_checks_total", "counter", "Active health checks run.",
       [](const cluster::HostHealth& h) { return h.health_checks; }},
      {"h2mesh_endpoint_health_check_failures_total", "counter", "Active health checks failed.",
       [](const cluster::HostHealth& h) { return h.health_check_failures; }},
      {"h2mesh_endpoint_health_transitions_total", "counter",
       "Healthy/unhealthy transitions from active health checks.",
       [](const cluster::HostHealth& h) { return h.health_transitions; }},
  };
  std::vector<std::pair<const cluster::HostHealth*, std::string>> hosts;
  for (const auto& [cname, by_endpoint] : health) {
    const std::string cluster = p.cluster(cname);
    for (const auto& [ename, h] : by_endpoint)
      hosts.emplace_back(&h, cluster + "," + label("endpoint", ename));
  }
  for (const HealthGauge& g : kHealth) {
    p.family(g.name, g.type, g.help);
    for (const auto& [h, labels] : hosts) p.sample(g.name, labels, g.get(*h));
  }
}

// Mesh mode: the Services, what became of the redirected connections, the TCP relays, mesh
// mTLS origination and the callers' identities.
void render_mesh(Prom& p, const proxy::MeshStats& m, const proxy::MeshTable& mesh) {
  p.family("h2mesh_mesh_services", "gauge",
           "Service ports with a cluster IP the mesh knows from the Kubernetes API.");
  p.sample("h2mesh_mesh_services", "", mesh.by_cluster.size());
  {
    using Stats = proxy::MeshStats;
    static const Row<Stats> kRows[] = {H2MESH_MESH_COUNTERS(H2MESH_ROW)};
    render_table(p, kRows, [&](auto emit) { emit("", m); });
  }
  const proxy::RelayStats& r = m.relay;
  struct Single {
    const char* name;
    const char* type;
    const char* help;
    uint64_t value;
  };
  const Single relay[] = {
      {"h2mesh_relay_connections_total", "counter", "TCP relays started.", r.connections_total},
      {"h2mesh_relay_connections_active", "gauge", "TCP relays open now.", r.connections_active},
      {"h2mesh_relay_connect_failures_total", "counter",
       "TCP relays whose destination refused, was unreachable or timed out.", r.connect_failures},
      {"h2mesh_relay_resets_total", "counter",
       "TCP relays ended by a reset or error on one side, passed on as a reset.", r.resets},
      {"h2mesh_relay_idle_timeouts_total", "counter", "TCP relays closed as idle.",
       r.idle_timeouts},
  };
  for (const Single& one : relay) {
    p.family(one.name, one.type, one.help);
    p.sample(one.name, "", one.value);
  }
  p.family("h2mesh_relay_bytes_total", "counter", "Bytes relayed, by direction.");
  p.sample("h2mesh_relay_bytes_total", label("direction", "upstream"), r.bytes_to_upstream);
  p.sample("h2mesh_relay_bytes_total", label("direction", "downstream"), r.bytes_to_downstream);
  p.family("h2mesh_mesh_originations_total", "counter",
           "Connections to Service endpoints with mesh mTLS on, by how they were made.");
  const std::pair<const char*, uint64_t> origin[] = {
      {"mtls", m.mtls_handshakes[static_cast<size_t>(net::TlsClientResult::Ok)] +
                   m.mtls_handshakes[static_cast<size_t>(net::TlsClientResult::Resumed)]},
      {"plaintext_fallback", m.plaintext_fallbacks},
      {"plaintext_remembered", m.plaintext_remembered},
      {"wrong_trust_domain", m.mtls_wrong_trust_domain}};
  for (const auto& [kind, count] : origin)
    p.sample("h2mesh_mesh_originations_total", label("outcome", kind), count);
  p.family("h2mesh_mesh_tls_handshakes_total", "counter",
           "Mesh mTLS handshakes towards Service endpoints, by how they ended.");
  for (size_t i = 0; i < net::kTlsClientResults; ++i)
    p.sample("h2mesh_mesh_tls_handshakes_total",
             label("result", net::tls_client_result_name(static_cast<net::TlsClientResult>(i))),
             m.mtls_handshakes[i]);
  p.family("h2mesh_inbound_calls_total", "counter",
           "Calls arriving at the pod through the sidecar, by the caller's mesh identity "
           "(\"plaintext\" without mTLS; at most 100 identities, then \"other\").");
  for (const auto& [identity, count] : m.inbound_calls)
    p.sample("h2mesh_inbound_calls_total", label("identity", identity), count);
}

}  // namespace

std::string render_metrics(const proxy::WorkerStats& s, const HealthView& health,
                           const config::Config&, const proxy::MeshTable* mesh,
                           const discovery::ServiceMapWatcher::Counters* api) {
  Prom p;
  p.set_mesh(mesh);
  {
    using Stats = proxy::WorkerStats;
    static const Row<Stats> kRows[] = {H2MESH_WORKER_COUNTERS(H2MESH_ROW)};
    render_table(p, kRows, [&](auto emit) { emit("", s); });
  }
  p.family("h2mesh_listener_rate_limited_total", "counter",
           "Calls answered RESOURCE_EXHAUSTED by the listener's rate_limit.");
  for (const auto& [key, limited] : s.rate_limited)
    if (key.route < 0)
      p.sample("h2mesh_listener_rate_limited_total", label("listener", key.listener), limited);
  p.family("h2mesh_route_rate_limited_total", "counter",
           "Calls answered RESOURCE_EXHAUSTED by a route's rate_limit (route: its position in the "
           "listener, 0 = first).");
  for (const auto& [key, limited] : s.rate_limited)
    if (key.route >= 0)
      p.sample("h2mesh_route_rate_limited_total",
               label("listener", key.listener) + "," + label("route", std::to_string(key.route)),
               limited);
  render_listeners(p, s);
  render_listener_tls(p, s);
  if (mesh) render_mesh(p, s.mesh, *mesh);
  if (api) render_api(p, *api);
  const std::vector<ClusterSeries> clusters = cluster_series(p, s);
  render_clusters(p, clusters);
  render_endpoints(p, clusters);
  render_health(p, health);
  return p.take() + observe::render_trace_metrics();
}

std::string render_clusters_json(const proxy::WorkerStats& s, const HealthView& health,
                                 const config::Config& config, const proxy::MeshTable* mesh) {
  std::string out = "{\"clusters\":[";
  bool first_cluster = true;
  // The config's clusters, then the mesh's Services (sorted by cluster name).
  std::vector<std::pair<const config::Cluster*, const proxy::MeshRoute*>> all;
  for (const auto& cluster : config.clusters) all.emplace_back(&cluster, nullptr);
  if (mesh) {
    std::map<std::string, const proxy::MeshRoute*> sorted;
    for (const auto& [name, route] : mesh->by_cluster) sorted.emplace(name, route.get());
    for (const auto& [name, route] : sorted) all.emplace_back(&route->snapshot->settings, route);
  }
  for (const auto& [cluster_ptr, route] : all) {
    const config::Cluster& cluster = *cluster_ptr;
    auto it = s.clusters.find(cluster.name);
    proxy::ClusterStats empty;
    const proxy::ClusterStats& c = it == s.clusters.end() ? empty : it->second;
    if (!first_cluster) out += ",";
    first_cluster = false;
    out += "{\"name\":" + json_string(cluster.name);
    if (route) {
      size_t available = 0;
      for (const auto& h : route->snapshot->hosts) available += h.available();
      out += ",\"service\":" + json_string(route->service) +
             ",\"namespace\":" + json_string(route->namespace_) +
             ",\"hosts\":" + std::to_string(route->snapshot->hosts.size()) +
             ",\"hosts_available\":" + std::to_string(available);
    }
    out += std::string(",\"lb_policy\":\"") + config::lb_policy_name(cluster.lb_policy) +
           "\",\"calls_total\":" + std::to_string(c.calls.calls_total) +
           ",\"in_flight\":" + std::to_string(c.calls.in_flight) +
           ",\"by_status\":" + status_json(c.calls) +
           ",\"no_endpoint\":" + std::to_string(c.no_endpoint) + ",\"endpoints\":[";
    bool first = true;
    for (const auto& [addr, e] : c.endpoints) {
      if (!first) out += ",";
      first = false;
      const cluster::HostHealth* h = find_health(health, cluster.name, addr);
      const cluster::HostHealth hv = h ? *h : cluster::HostHealth{};
      out += "{\"address\":" + json_string(addr) + ",\"state\":\"" + endpoint_state(e.in_snapshot, e.in_backoff, h) +
             "\",\"healthy\":" + (hv.healthy ? "true" : "false") +
             ",\"ejected\":" + (hv.ejected ? "true" : "false") +
             ",\"ejections\":" + std::to_string(hv.ejections) +
             ",\"health_checks\":" + std::to_string(hv.health_checks) +
             ",\"health_check_failures\":" + std::to_string(hv.health_check_failures) +
             ",\"last_health_failure\":" + json_string(hv.last_health_failure) +
             ",\"calls_total\":" + std::to_string(e.calls.calls_total) +
             ",\"in_flight\":" + std::to_string(e.calls.in_flight) +
             ",\"by_status\":" + status_json(e.calls) +
             ",\"upstream_connections\":" + std::to_string(e.upstream_connections) +
             ",\"connect_failures\":" + std::to_string(e.connect_failures) +
             ",\"upstream_resets\":" + std::to_string(e.upstream_resets) + "}";
    }
    out += "]}";
  }
  return out + "]}\n";
}

const char* endpoint_state(bool in_snapshot, bool in_backoff, const cluster::HostHealth* health) {
  if (!in_snapshot) return "removed";
  // The active check's verdict first: it is what brings the endpoint back. An endpoint that is
  // down (a killed pod) is usually ejected too, and would otherwise read "ejected" until its
  // ejection time ran out, then "unhealthy".
  if (health && !health->healthy) return "unhealthy";
  if (health && health->ejected) return "ejected";
  return in_backoff ? "reconnecting" : "available";
}

}  // namespace h2mesh::admin
