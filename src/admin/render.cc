#include "admin/render.h"

#include <algorithm>
#include <map>

#include "grpc/status.h"
#include "net/tls_client.h"
#include "observe/trace_counters.h"

namespace h2mesh::admin {
namespace {

const char* status_label(size_t slot) {
  return slot == proxy::kNoStatusSlot ? "NONE" : grpc::status_name(static_cast<int>(slot));
}

class Prom {
 public:
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
  void sample(const char* name, const std::string& labels, uint64_t value) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += std::to_string(value);
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

  // A cluster's labels: its name, and for a mesh Service's cluster the Service and namespace.
  void set_mesh(const proxy::MeshTable* mesh) { mesh_ = mesh; }
  std::string cluster(const std::string& name) const;

 private:
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
  if (const proxy::MeshRoute* route = mesh_ ? mesh_->find_cluster(name) : nullptr)
    out += "," + label("service", route->service) + "," + label("namespace", route->namespace_);
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

const char* endpoint_state(const proxy::EndpointStats& e, const cluster::HostHealth* h) {
  if (!e.in_snapshot) return "removed";
  if (h && h->ejected) return "ejected";
  if (h && !h->healthy) return "unhealthy";
  return e.in_backoff ? "reconnecting" : "available";
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

std::string render_metrics(const proxy::WorkerStats& s, const HealthView& health,
                           const config::Config&, const proxy::MeshTable* mesh,
                           const discovery::ServiceMapWatcher::Counters* api) {
  Prom p;
  p.set_mesh(mesh);
  p.family("h2mesh_downstream_connections_total", "counter", "Client connections accepted.");
  p.sample("h2mesh_downstream_connections_total", "", s.downstream_connections_total);
  p.family("h2mesh_downstream_connections_active", "gauge", "Client connections open now.");
  p.sample("h2mesh_downstream_connections_active", "", s.downstream_connections_active);
  p.family("h2mesh_downstream_protocol_errors_total", "counter",
           "Client connections closed for a protocol error.");
  p.sample("h2mesh_downstream_protocol_errors_total", "", s.downstream_protocol_errors);
  p.family("h2mesh_calls_no_route_total", "counter", "Calls answered UNIMPLEMENTED: no route.");
  p.sample("h2mesh_calls_no_route_total", "", s.calls_no_route);
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
  p.family("h2mesh_calls_malformed_timeout_total", "counter",
           "Calls answered INTERNAL (HTTP 400): malformed grpc-timeout.");
  p.sample("h2mesh_calls_malformed_timeout_total", "", s.calls_malformed_timeout);
  render_listener_tls(p, s);

  if (mesh) {
    const proxy::MeshStats& m = s.mesh;
    p.family("h2mesh_mesh_services", "gauge",
             "Service ports with a cluster IP the mesh knows from the Kubernetes API.");
    p.sample("h2mesh_mesh_services", "", mesh->by_cluster.size());
    p.family("h2mesh_mesh_connections_total", "counter",
             "Connections redirected to the outbound port, by what became of them.");
    const std::pair<const char*, uint64_t> kinds[] = {
        {"http2", m.http2_connections},    {"unknown_destination", m.unknown_destination},
        {"opaque_port", m.opaque},         {"not_http2", m.detected_other},
        {"loop_refused", m.loops_refused}, {"no_destination", m.no_destination}};
    for (const auto& [kind, count] : kinds)
      p.sample("h2mesh_mesh_connections_total", label("outcome", kind), count);
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
    p.family("h2mesh_inbound_connections_total", "counter",
             "Connections redirected to the inbound port, by what became of them.");
    const std::pair<const char*, uint64_t> inbound[] = {
        {"mtls", m.inbound_mtls},
        {"plaintext", m.inbound_plaintext},
        {"relayed", m.inbound_relayed},
        {"plaintext_refused", m.inbound_refused_plaintext},
        {"loop_refused", m.inbound_loops_refused},
        {"no_destination", m.inbound_no_destination}};
    for (const auto& [kind, count] : inbound)
      p.sample("h2mesh_inbound_connections_total", label("outcome", kind), count);
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
  if (api) render_api(p, *api);
  p.family("h2mesh_cluster_calls_total", "counter", "Calls routed to the cluster.");
  for (const auto& [name, c] : s.clusters)
    p.sample("h2mesh_cluster_calls_total", p.cluster(name), c.calls.calls_total);
  p.family("h2mesh_cluster_calls_in_flight", "gauge", "Calls of the cluster in flight.");
  for (const auto& [name, c] : s.clusters)
    p.sample("h2mesh_cluster_calls_in_flight", p.cluster(name), c.calls.in_flight);
  p.family("h2mesh_cluster_calls_by_status_total", "counter",
           "Finished calls by grpc-status (NONE: reset without a status).");
  for (const auto& [name, c] : s.clusters)
    for (size_t i = 0; i < proxy::kStatusSlots; ++i)
      if (c.calls.by_status[i] || i == 0)
        p.sample("h2mesh_cluster_calls_by_status_total",
                 p.cluster(name) + "," + label("grpc_status", status_label(i)),
                 c.calls.by_status[i]);
  p.family("h2mesh_cluster_no_endpoint_total", "counter", "Calls failed: no endpoint to pick.");
  for (const auto& [name, c] : s.clusters)
    p.sample("h2mesh_cluster_no_endpoint_total", p.cluster(name), c.no_endpoint);
  p.family("h2mesh_cluster_pending_overflow_total", "counter",
           "Calls failed: the queue waiting for an upstream connection was full.");
  for (const auto& [name, c] : s.clusters)
    p.sample("h2mesh_cluster_pending_overflow_total", p.cluster(name), c.pending_overflow);

  p.family("h2mesh_downstream_max_age_goaways_total", "counter",
           "Client connections sent GOAWAY at max_connection_age.");
  p.sample("h2mesh_downstream_max_age_goaways_total", "", s.downstream_max_age_goaways);
  p.family("h2mesh_downstream_idle_closed_total", "counter",
           "Client connections closed by idle_timeout.");
  p.sample("h2mesh_downstream_idle_closed_total", "", s.downstream_idle_closed);
  p.family("h2mesh_downstream_header_timeouts_total", "counter",
           "Prefaces or request headers that did not arrive within header_timeout.");
  p.sample("h2mesh_downstream_header_timeouts_total", "", s.downstream_header_timeouts);
  p.family("h2mesh_downstream_header_limit_total", "counter",
           "Request header blocks refused: over max_header_list_bytes or max_header_fields.");
  p.sample("h2mesh_downstream_header_limit_total", "", s.downstream_header_limit);
  p.family("h2mesh_downstream_flood_goaways_total", "counter",
           "Client connections closed with ENHANCE_YOUR_CALM: a frame budget ran out.");
  p.sample("h2mesh_downstream_flood_goaways_total", "", s.downstream_flood_goaways);

  struct ClusterCounter {
    const char* name;
    const char* help;
    uint64_t proxy::ClusterStats::*field;
  };
  static const ClusterCounter kCluster[] = {
      {"h2mesh_cluster_circuit_breaker_overflow_total",
       "Calls failed at once: max_calls or max_calls_per_endpoint reached.",
       &proxy::ClusterStats::circuit_breaker_overflow},
      {"h2mesh_cluster_retry_budget_exhausted_total", "Retries not made: the budget was spent.",
       &proxy::ClusterStats::retry_budget_exhausted},
      {"h2mesh_cluster_deadline_exceeded_total", "Calls the proxy ended at their deadline.",
       &proxy::ClusterStats::deadline_exceeded},
      {"h2mesh_cluster_response_header_limit_total",
       "Responses refused: headers or trailers over the cluster's header limits.",
       &proxy::ClusterStats::response_header_limit},
  };
  for (const ClusterCounter& k : kCluster) {
    p.family(k.name, "counter", k.help);
    for (const auto& [name, c] : s.clusters) p.sample(k.name, p.cluster(name), c.*k.field);
  }
  p.family("h2mesh_upstream_tls_handshakes_total", "counter",
           "TLS handshakes with a cluster's endpoints by result: ok, resumed (an earlier session "
           "accepted), verify_failed, san_mismatch, no_alpn, protocol, timeout.");
  for (const auto& [name, c] : s.clusters) {
    if (!c.tls) continue;
    for (size_t i = 0; i < c.tls_handshakes.size(); ++i) {
      p.sample(
          "h2mesh_upstream_tls_handshakes_total",
          p.cluster(name) + "," +
              label("result", net::tls_client_result_name(static_cast<net::TlsClientResult>(i))),
          c.tls_handshakes[i]);
    }
  }
  p.family("h2mesh_cluster_retries_total", "counter",
           "Retries by reason: connect_failure, refused_stream (both never processed), status.");
  for (const auto& [name, c] : s.clusters) {
    p.sample("h2mesh_cluster_retries_total",
             p.cluster(name) + "," + label("reason", "connect_failure"), c.retries_connect_failure);
    p.sample("h2mesh_cluster_retries_total",
             p.cluster(name) + "," + label("reason", "refused_stream"), c.retries_refused_stream);
    p.sample("h2mesh_cluster_retries_total", p.cluster(name) + "," + label("reason", "status"),
             c.retries_status);
  }

  struct Gauge {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const proxy::EndpointStats&);
  };
  // Sums over every endpoint the cluster ever had: they do not drop when the series of an
  // endpoint that left are retired.
  static const Gauge kEndpointTotals[] = {
      {"h2mesh_cluster_upstream_attempts_total", "counter",
       "Call attempts sent to the cluster's endpoints (retries included).",
       [](const proxy::EndpointStats& e) { return e.calls.calls_total; }},
      {"h2mesh_cluster_upstream_connections_total", "counter",
       "HTTP/2 connections opened to the cluster's endpoints.",
       [](const proxy::EndpointStats& e) { return e.upstream_connections_total; }},
      {"h2mesh_cluster_connect_failures_total", "counter",
       "Failed connection attempts to the cluster's endpoints.",
       [](const proxy::EndpointStats& e) { return e.connect_failures; }},
      {"h2mesh_cluster_upstream_resets_total", "counter", "Streams the cluster's endpoints reset.",
       [](const proxy::EndpointStats& e) { return e.upstream_resets; }},
  };
  std::map<std::string, proxy::EndpointStats> totals;
  for (const auto& [name, c] : s.clusters) totals.emplace(name, proxy::endpoint_totals(c));
  for (const Gauge& g : kEndpointTotals) {
    p.family(g.name, g.type, g.help);
    for (const auto& [name, t] : totals) p.sample(g.name, p.cluster(name), g.get(t));
  }
  static const Gauge kEndpoint[] = {
      {"h2mesh_endpoint_calls_total", "counter", "Calls sent to the endpoint.",
       [](const proxy::EndpointStats& e) { return e.calls.calls_total; }},
      {"h2mesh_endpoint_calls_in_flight", "gauge", "Calls in flight on the endpoint.",
       [](const proxy::EndpointStats& e) { return e.calls.in_flight; }},
      {"h2mesh_endpoint_upstream_connections", "gauge", "Open HTTP/2 connections to the endpoint.",
       [](const proxy::EndpointStats& e) { return e.upstream_connections; }},
      {"h2mesh_endpoint_upstream_connections_total", "counter",
       "HTTP/2 connections opened to the endpoint.",
       [](const proxy::EndpointStats& e) { return e.upstream_connections_total; }},
      {"h2mesh_endpoint_connect_failures_total", "counter", "Failed connection attempts.",
       [](const proxy::EndpointStats& e) { return e.connect_failures; }},
      {"h2mesh_endpoint_upstream_resets_total", "counter", "Streams the endpoint reset.",
       [](const proxy::EndpointStats& e) { return e.upstream_resets; }},
  };
  for (const Gauge& g : kEndpoint) {
    p.family(g.name, g.type, g.help);
    for (const auto& [cname, c] : s.clusters)
      for (const auto& [ename, e] : c.endpoints)
        p.sample(g.name, p.cluster(cname) + "," + label("endpoint", ename), g.get(e));
  }
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
  for (const HealthGauge& g : kHealth) {
    p.family(g.name, g.type, g.help);
    for (const auto& [cname, hosts] : health)
      for (const auto& [ename, h] : hosts)
        p.sample(g.name, p.cluster(cname) + "," + label("endpoint", ename), g.get(h));
  }
  p.family("h2mesh_endpoint_calls_by_status_total", "counter",
           "Finished calls of the endpoint by grpc-status.");
  for (const auto& [cname, c] : s.clusters)
    for (const auto& [ename, e] : c.endpoints)
      for (size_t i = 0; i < proxy::kStatusSlots; ++i)
        if (e.calls.by_status[i] || i == 0)
          p.sample("h2mesh_endpoint_calls_by_status_total",
                   p.cluster(cname) + "," + label("endpoint", ename) + "," +
                       label("grpc_status", status_label(i)),
                   e.calls.by_status[i]);
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
      out += "{\"address\":" + json_string(addr) + ",\"state\":\"" + endpoint_state(e, h) +
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

}  // namespace h2mesh::admin
