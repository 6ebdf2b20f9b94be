#include "config/parser.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <map>

#include "config/access_log_reader.h"
#include "config/address_parser.h"
#include "config/cluster_tls_reader.h"
#include "config/discovery_reader.h"
#include "config/mesh_tls_reader.h"
#include "config/tracing_reader.h"
#include "config/resilience_reader.h"
#include "config/tls_reader.h"
#include "config/yaml_guard.h"
#include "config/yaml_reader.h"

namespace h2mesh::config {

namespace {

constexpr int64_t kMinWindowBytes = int64_t{64} * 1024;
constexpr int64_t kMaxInt31 = std::numeric_limits<int32_t>::max();  // HTTP/2 window limit
constexpr size_t kMaxFileBytes = 16 << 20;

// ---- The schema walk ------------------------------------------------------------------------

enum class AddressUse { Listen, Endpoint };

// A route's cluster name, checked once every cluster is known.
struct ClusterRef {
  std::string name;
  Located where;
};

class ConfigReader {
 public:
  explicit ConfigReader(Diagnostics* diag) : diag_(diag) {}

  void read(const Located& root, Config* config);

 private:
  void set_uint(const MapReader& map, std::string_view key, int64_t min, int64_t max,
                uint32_t* field) {
    config::set_uint(map, key, min, max, field, diag_);
  }
  void set_duration(const MapReader& map, std::string_view key, Millis min, Millis* field) {
    config::set_duration(map, key, min, field, diag_);
  }
  void set_window(const MapReader& map, std::string_view key, uint32_t* field);
  std::optional<SocketAddress> read_address(const Located& value, AddressUse use);

  void read_admin(const Located& value, Admin* admin);
  void read_buffers(const Located& value, Buffers* buffers);
  void read_listeners(const Located& value, std::vector<Listener>* listeners);
  void read_listener(const Located& value, Listener* listener);
  void read_connection_settings(const MapReader& map, Listener* listener);
  void read_connection_age(const MapReader& map, Listener* listener);
  void read_routes(const Located& value, std::vector<Route>* routes);
  std::optional<RouteMatch> read_match(const Located& value);
  void read_clusters(const Located& value, std::vector<Cluster>* clusters);
  void read_cluster(const Located& value, Cluster* cluster);
  void read_cluster_tuning(const MapReader& map, Cluster* cluster);
  void read_cluster_endpoints(const MapReader& map, Cluster* cluster);
  void read_mesh(const Located& value, Mesh* mesh);
  void read_mesh_service(const Located& value, MeshServiceSettings* settings);
  void check_mesh_ports(const Config& config);
  void read_endpoints(const Located& value, std::vector<Endpoint>* endpoints);
  std::optional<Endpoint> read_endpoint(const Located& value);

  void check_cluster_refs(const std::vector<Cluster>& clusters);
  void check_admin_address(const Admin& admin, const std::vector<Listener>& listeners);

  Diagnostics* diag_;
  std::vector<ClusterRef> cluster_refs_;
  bool clusters_complete_ = false;  // every cluster has a valid name: references can be checked
  std::optional<Located> admin_address_;
  std::optional<Located> mesh_block_;
  std::optional<Located> mesh_port_;
  std::map<std::string, int> listener_names_;      // name -> line
  std::map<std::string, int> listener_addresses_;  // address -> line
  std::map<std::string, int> cluster_names_;
};

void ConfigReader::set_window(const MapReader& map, std::string_view key, uint32_t* field) {
  if (auto value = map.get(key)) {
    if (auto bytes = read_size(*value, kMinWindowBytes, kMaxInt31, diag_)) {
      *field = static_cast<uint32_t>(*bytes);
    }
  }
}

std::optional<SocketAddress> ConfigReader::read_address(const Located& value, AddressUse use) {
  auto text = read_string(value, diag_);
  if (!text) return std::nullopt;
  AddressParse parse = parse_address(*text);
  const bool endpoint = use == AddressUse::Endpoint;
  std::string hint;
  switch (parse.problem) {
    case AddressProblem::None:
      if (!endpoint || parse.address.port != 0) return parse.address;
      diag_->add(value.mark, value.path + ": an endpoint cannot have port 0",
                 "endpoint ports are 1..65535");
      return std::nullopt;
    case AddressProblem::Malformed:
    case AddressProblem::NoPort:
      hint = "write an IP address and a port, e.g. 127.0.0.1:50051 or [::1]:50051";
      break;
    case AddressProblem::BadPort:
      hint = endpoint ? "endpoint ports are 1..65535" : "ports are 0..65535; 0 picks a free port";
      break;
    case AddressProblem::NotIp:
      if (!looks_like_hostname(parse.host)) {
        hint = "write an IPv4 address like 10.0.0.1 or an IPv6 address in brackets like [::1]";
      } else if (endpoint) {
        const std::string port =
            parse.address.port != 0 ? std::to_string(parse.address.port) : "<port>";
        hint =
            "static endpoints are IP addresses; a hostname needs DNS discovery: replace "
            "'endpoints' with discovery: { dns: { name: " +
            parse.host + ", port: " + port + " } }";
      } else {
        hint = "listen on an IP address, e.g. 0.0.0.0 for all interfaces or 127.0.0.1";
      }
      break;
  }
  diag_->add(value.mark, value.path + ": " + parse.error, hint);
  return std::nullopt;
}

void ConfigReader::read(const Located& root, Config* config) {
  MapReader map(root,
                {"workers", "log_level", "drain_timeout", "admin", "buffers", "listeners",
                 "clusters", "mesh", "access_log", "tracing"},
                diag_);
  set_uint(map, "workers", 0, 256, &config->workers);
  if (auto value = map.get("log_level")) {
    if (read_choice(*value, {"debug", "info", "warn", "error"}, diag_)) {
      config->log_level = value->node.Scalar();
    }
  }
  set_duration(map, "drain_timeout", Millis(0), &config->drain_timeout);
  if (auto value = map.get("admin")) read_admin(*value, &config->admin);
  if (auto value = map.get("buffers")) read_buffers(*value, &config->buffers);
  if (auto value = map.get("mesh")) read_mesh(*value, &config->mesh);
  if (auto value = map.get("access_log"))
    read_access_log(*value, &config->access_log.emplace(), diag_);
  if (auto value = map.get("tracing")) read_tracing(*value, &config->tracing, diag_);
  // In mesh mode the Services are the clusters: listeners and clusters of one's own are optional.
  const char* sketch = "a config needs at least one listener and one cluster (or a 'mesh' block)";
  if (config->mesh.enabled) {
    auto listeners = map.get("listeners");
    auto clusters = map.get("clusters");
    if (listeners) read_listeners(*listeners, &config->listeners);
    if (clusters) read_clusters(*clusters, &config->clusters);
    else clusters_complete_ = true;
  } else {
    if (auto value = map.require("listeners", sketch)) read_listeners(*value, &config->listeners);
    if (auto value = map.require("clusters", sketch)) read_clusters(*value, &config->clusters);
  }
  check_cluster_refs(config->clusters);
  check_admin_address(config->admin, config->listeners);
  check_mesh_ports(*config);
}

void ConfigReader::read_mesh(const Located& value, Mesh* mesh) {
  MapReader map(value,
                {"enabled", "outbound_port", "detect_timeout", "opaque_ports", "namespaces",
                 "kubeconfig", "backoff", "cluster_idle_timeout", "relay", "connection",
                 "defaults", "services", "inbound_port", "tls"},
                diag_);
  if (!map.ok()) return;
  mesh_block_ = value;
  mesh->enabled = true;
  if (auto enabled = map.get("enabled")) {
    if (auto on = read_bool(*enabled, diag_)) mesh->enabled = *on;
  }
  if (auto port = map.get("outbound_port")) {
    if (auto number = read_int(*port, 1, 65535, diag_)) {
      mesh->outbound_port = static_cast<uint16_t>(*number);
      mesh_port_ = *port;
    }
  }
  if (auto port = map.get("inbound_port")) {
    if (auto number = read_int(*port, 1, 65535, diag_))
      mesh->inbound_port = static_cast<uint16_t>(*number);
  }
  if (auto tls = map.get("tls")) {
    // A mistake in it fails the whole config, so what is stored here is never used half-read.
    mesh->tls.emplace();
    read_mesh_tls(*tls, &*mesh->tls, diag_);
  }
  set_duration(map, "detect_timeout", Millis(1), &mesh->detect_timeout);
  if (auto ports = map.get("opaque_ports")) {
    if (auto items = read_sequence(*ports, diag_, "port")) {
      mesh->opaque_ports.clear();
      for (const Located& item : *items) {
        if (auto number = read_int(item, 1, 65535, diag_))
          mesh->opaque_ports.push_back(static_cast<uint16_t>(*number));
      }
    }
  }
  if (auto namespaces = map.get("namespaces")) {
    if (auto items = read_sequence(*namespaces, diag_, "namespace")) {
      for (const Located& item : *items) {
        auto text = read_string(item, diag_);
        if (!text) continue;
        std::string error, hint;
        if (!check_dns_label(*text, &error, &hint)) {
          diag_->add(item.mark, item.path + ": namespace '" + *text + "' " + error, hint);
          continue;
        }
        mesh->namespaces.push_back(*text);
      }
    }
  }
  if (auto path = map.get("kubeconfig")) {
    if (auto text = read_string(*path, diag_)) mesh->kubeconfig = *text;
  }
  if (auto backoff = map.get("backoff")) {
    read_backoff(*backoff, Millis(1), &mesh->backoff_base, &mesh->backoff_max, "500ms and 30s",
                 diag_);
  }
  set_duration(map, "cluster_idle_timeout", Millis(1000), &mesh->cluster_idle_timeout);
  if (auto relay = map.get("relay")) {
    MapReader relay_map(*relay, {"connect_timeout", "idle_timeout"}, diag_);
    set_duration(relay_map, "connect_timeout", Millis(1), &mesh->relay_connect_timeout);
    set_duration(relay_map, "idle_timeout", Millis(0), &mesh->relay_idle_timeout);
  }
  if (auto connection = map.get("connection")) {
    MapReader conn(*connection,
                   {"max_concurrent_streams", "max_connection_age", "max_connection_age_grace",
                    "idle_timeout", "header_timeout", "max_header_list_bytes",
                    "max_header_fields", "flood_limits", "keepalive"},
                   diag_);
    read_connection_settings(conn, &mesh->connection);
  }
  mesh->connection.name = "mesh-outbound";
  // Health checks are off in the mesh: the API's readiness already says which pods answer.
  if (auto defaults = map.get("defaults")) read_mesh_service(*defaults, &mesh->defaults);
  if (auto services = map.get("services")) {
    if (!services->node.IsMap()) {
      diag_->add(services->mark,
                 services->path + ": expected a map of 'name.namespace' keys, got " +
                     describe_node(services->node),
                 "e.g. services: { greeter.grpcdemo: { lb_policy: least_request } }");
      return;
    }
    for (const auto& entry : services->node) {
      std::string key = entry.first.IsScalar() ? entry.first.Scalar() : std::string();
      Located item{entry.second, entry.second.IsNull() ? entry.first.Mark() : entry.second.Mark(),
                   services->path + "." + key};
      const size_t dot = key.find('.');
      std::string error, hint;
      if (dot == std::string::npos || key.find('.', dot + 1) != std::string::npos ||
          !check_dns_label(key.substr(0, dot), &error, &hint) ||
          !check_dns_label(key.substr(dot + 1), &error, &hint)) {
        diag_->add(entry.first.Mark(),
                   services->path + ": '" + key + "' is not a Service as name.namespace",
                   "e.g. greeter.grpcdemo for Service greeter in namespace grpcdemo");
        MeshServiceSettings unused = mesh->defaults;
        read_mesh_service(item, &unused);  // its own mistakes are reported too
        continue;
      }
      if (mesh->services.count(key)) {
        diag_->add(entry.first.Mark(), services->path + ": '" + key + "' is given twice");
        continue;
      }
      MeshServiceSettings settings = mesh->defaults;  // an override changes what it names
      read_mesh_service(item, &settings);
      mesh->services.emplace(key, std::move(settings));
    }
  }
}

void ConfigReader::read_mesh_service(const Located& value, MeshServiceSettings* settings) {
  MapReader map(
      value,
      {"lb_policy", "connect_timeout", "max_connections_per_endpoint", "max_pending_calls",
       "reconnect_backoff", "idle_timeout", "panic_threshold_percent", "health_check",
       "outlier_detection", "circuit_breakers", "max_header_list_bytes", "max_header_fields",
       "keepalive", "max_timeout", "retry"},
      diag_);
  if (!map.ok()) return;
  read_cluster_tuning(map, &settings->cluster);
  set_duration(map, "max_timeout", Millis(0), &settings->max_timeout);
  if (auto retry = map.get("retry")) read_retry_policy(*retry, &settings->retry, diag_);
}

void ConfigReader::check_mesh_ports(const Config& config) {
  if (!config.mesh.enabled) return;
  const uint16_t port = config.mesh.outbound_port;
  if (!mesh_block_) return;  // mesh mode from the command line: apply_mesh_flags checks
  const Located& at = mesh_port_ ? *mesh_port_ : *mesh_block_;
  const YAML::Mark mark = at.mark;
  const std::string where = at.path + ": ";
  if (config.admin.enabled && config.admin.address.port == port) {
    diag_->add(mark, where + "outbound port " + std::to_string(port) + " is the admin port",
               "the outbound port takes redirected traffic; give the admin endpoint its own port");
  }
  for (const Listener& listener : config.listeners) {
    if (listener.address.port == port) {
      diag_->add(mark,
                 where + "outbound port " + std::to_string(port) + " is also listener '" +
                     listener.name + "''s port",
                 "the outbound listener binds this port on every address");
      return;
    }
  }
}

void ConfigReader::read_admin(const Located& value, Admin* admin) {
  MapReader map(value, {"enabled", "address", "endpoint_stats_retention"}, diag_);
  set_duration(map, "endpoint_stats_retention", Millis(0), &admin->endpoint_stats_retention);
  if (auto enabled = map.get("enabled")) {
    if (auto flag = read_bool(*enabled, diag_)) admin->enabled = *flag;
  }
  if (auto address = map.get("address")) {
    if (auto parsed = read_address(*address, AddressUse::Listen)) {
      admin->address = *parsed;
      admin_address_ = *address;
    }
  }
}

void ConfigReader::read_buffers(const Located& value, Buffers* buffers) {
  MapReader map(value, {"stream_window_bytes", "connection_window_bytes"}, diag_);
  set_window(map, "stream_window_bytes", &buffers->stream_window_bytes);
  set_window(map, "connection_window_bytes", &buffers->connection_window_bytes);
}

void ConfigReader::read_listeners(const Located& value, std::vector<Listener>* listeners) {
  auto items = read_sequence(value, diag_, "listener");
  if (!items) return;
  for (const Located& item : *items) {
    read_listener(item, &listeners->emplace_back());
  }
}

void ConfigReader::read_listener(const Located& value, Listener* listener) {
  MapReader map(value,
                {"name", "address", "max_concurrent_streams", "max_connection_age",
                 "max_connection_age_grace", "idle_timeout", "header_timeout", "rate_limit",
                 "max_header_list_bytes", "max_header_fields", "flood_limits", "keepalive",
                 "tls", "routes"},
                diag_);
  const int line = line_of(value.mark);
  if (auto name = map.require("name")) {
    if (auto text = read_string(*name, diag_)) {
      listener->name = *text;
      auto [it, inserted] = listener_names_.emplace(*text, line);
      if (!inserted) {
        diag_->add(name->mark, name->path + ": duplicate listener name '" + *text + "'",
                   "first defined on line " + std::to_string(it->second));
      }
    }
  }
  if (auto address = map.require("address", "e.g. address: \"0.0.0.0:50051\"")) {
    if (auto parsed = read_address(*address, AddressUse::Listen)) {
      listener->address = *parsed;
      // Port 0 asks the kernel for a fresh port each time, so those never collide.
      auto [it, inserted] = listener_addresses_.emplace(parsed->to_string(), line);
      if (parsed->port != 0 && !inserted) {
        diag_->add(address->mark,
                   address->path + ": address " + parsed->to_string() + " is already used",
                   "the listener on line " + std::to_string(it->second) + " binds it too");
      }
    }
  }
  read_connection_settings(map, listener);
  if (auto limit = map.get("rate_limit")) read_rate_limit(*limit, &listener->rate_limit, diag_);
  if (auto tls = map.get("tls")) read_listener_tls(*tls, &listener->tls, diag_);
  if (auto routes = map.require("routes", "add at least one route naming a cluster")) {
    read_routes(*routes, &listener->routes);
  }
}

void ConfigReader::read_connection_settings(const MapReader& map, Listener* listener) {
  set_uint(map, "max_concurrent_streams", 1, kMaxInt31, &listener->max_concurrent_streams);
  read_connection_age(map, listener);
  set_duration(map, "max_connection_age_grace", Millis(0), &listener->max_connection_age_grace);
  set_duration(map, "idle_timeout", Millis(0), &listener->idle_timeout);
  set_duration(map, "header_timeout", Millis(10), &listener->header_timeout);
  read_header_limits(map, &listener->max_header_list_bytes, &listener->max_header_fields, diag_);
  if (auto flood = map.get("flood_limits")) read_flood_limits(*flood, &listener->flood_limits, diag_);
  if (auto keepalive = map.get("keepalive")) read_keepalive(*keepalive, &listener->keepalive, diag_);
}

void ConfigReader::read_connection_age(const MapReader& map, Listener* listener) {
  auto age = map.get("max_connection_age");
  if (!age) return;
  auto duration = read_duration(*age, Millis(0), diag_);
  if (!duration) return;
  if (*duration != Millis(0) && *duration < std::chrono::seconds(1)) {
    diag_->add(age->mark, age->path + ": must be 0 (never) or at least 1s",
               "every client would reconnect all the time; ages are usually minutes, e.g. 5m");
    return;
  }
  listener->max_connection_age = *duration;
}

void ConfigReader::read_routes(const Located& value, std::vector<Route>* routes) {
  auto items = read_sequence(value, diag_, "route");
  if (!items) return;
  std::optional<Located> default_route;
  for (const Located& item : *items) {
    if (default_route) {
      diag_->add(default_route->mark,
                 default_route->path + ": the default route (no 'match') must be the last route",
                 "it matches every call, so the routes after it (from line " +
                     std::to_string(line_of(item.mark)) + ") are unreachable; move it to the end");
      default_route.reset();
    }
    Route& route = routes->emplace_back();
    route.line = line_of(item.mark);
    MapReader map(item, {"match", "cluster", "max_timeout", "retry", "rate_limit"}, diag_);
    if (auto cluster = map.require("cluster")) {
      if (auto name = read_string(*cluster, diag_)) {
        route.cluster = *name;
        cluster_refs_.push_back(ClusterRef{*name, *cluster});
      }
    }
    if (auto match = map.get("match")) {
      route.match = read_match(*match);
    } else if (map.ok()) {
      default_route = item;
    }
    set_duration(map, "max_timeout", Millis(0), &route.max_timeout);
    if (auto retry = map.get("retry")) read_retry_policy(*retry, &route.retry, diag_);
    if (auto limit = map.get("rate_limit")) read_rate_limit(*limit, &route.rate_limit, diag_);
  }
}

std::optional<RouteMatch> ConfigReader::read_match(const Located& value) {
  MapReader map(value, {"authority", "prefix", "path"}, diag_);
  if (!map.ok()) return std::nullopt;
  RouteMatch match;
  auto authority = map.get("authority");
  auto prefix = map.get("prefix");
  auto path = map.get("path");
  if (!authority && !prefix && !path) {
    diag_->add(value.mark, value.path + ": a match needs 'authority', 'prefix' or 'path'",
               "omit 'match' to make this the default route");
  }
  if (authority) {
    if (auto text = read_string(*authority, diag_)) match.authority = *text;
  }
  if (prefix) {
    auto text = read_string(*prefix, diag_);
    if (text && !text->starts_with('/')) {
      diag_->add(prefix->mark, prefix->path + ": prefix '" + *text + "' must start with '/'",
                 "e.g. prefix: \"/helloworld.Greeter/\"");
    } else if (text) {
      match.prefix = *text;
    }
  }
  if (path) {
    auto text = read_string(*path, diag_);
    const size_t slash = text ? text->find('/', 1) : std::string::npos;
    const bool well_formed = text && text->starts_with('/') && slash != std::string::npos &&
                             slash > 1 && slash + 1 < text->size() &&
                             text->find('/', slash + 1) == std::string::npos;
    if (text && !well_formed) {
      diag_->add(path->mark, path->path + ": path '" + *text + "' is not /service/method",
                 "write the full method, e.g. /helloworld.Greeter/SayHello, or use 'prefix'");
    } else if (text) {
      match.path = *text;
    }
  }
  if (prefix && path) {
    diag_->add(path->mark, value.path + ": 'prefix' and 'path' cannot both be set",
               "use 'path' for one method or 'prefix' for a whole service");
  }
  return match;
}

void ConfigReader::read_clusters(const Located& value, std::vector<Cluster>* clusters) {
  auto items = read_sequence(value, diag_, "cluster");
  if (!items) return;
  clusters_complete_ = true;
  for (const Located& item : *items) {
    Cluster& cluster = clusters->emplace_back();
    read_cluster(item, &cluster);
    if (cluster.name.empty()) clusters_complete_ = false;
  }
}

void ConfigReader::read_cluster(const Located& value, Cluster* cluster) {
  MapReader map(
      value,
      {"name", "lb_policy", "connect_timeout", "max_connections_per_endpoint", "max_pending_calls",
       "reconnect_backoff", "idle_timeout", "panic_threshold_percent", "health_check",
       "outlier_detection", "circuit_breakers", "discovery", "endpoints", "max_header_list_bytes",
       "max_header_fields", "keepalive", "tls"},
      diag_);
  if (auto name = map.require("name")) {
    if (auto text = read_string(*name, diag_)) {
      cluster->name = *text;
      auto [it, inserted] = cluster_names_.emplace(*text, line_of(value.mark));
      if (!inserted) {
        diag_->add(name->mark, name->path + ": duplicate cluster name '" + *text + "'",
                   "first defined on line " + std::to_string(it->second));
      }
    }
  }
  read_cluster_tuning(map, cluster);
  if (auto discovery = map.get("discovery")) {
    read_discovery(*discovery, &cluster->discovery, diag_);
  }
  read_cluster_endpoints(map, cluster);
  if (auto tls = map.get("tls")) read_cluster_tls(*tls, &cluster->tls.emplace(), diag_);
}

// The settings a cluster and a mesh Service share: everything but name, endpoints and discovery.
void ConfigReader::read_cluster_tuning(const MapReader& map, Cluster* cluster) {
  if (auto policy = map.get("lb_policy")) {
    // Same order as LbPolicy.
    if (auto index = read_choice(*policy, {"round_robin", "random", "least_request"}, diag_)) {
      cluster->lb_policy = static_cast<LbPolicy>(*index);
    }
  }
  set_duration(map, "connect_timeout", Millis(1), &cluster->connect_timeout);
  set_uint(map, "max_connections_per_endpoint", 1, 1024, &cluster->max_connections_per_endpoint);
  set_uint(map, "max_pending_calls", 0, 1000000, &cluster->max_pending_calls);
  if (auto backoff = map.get("reconnect_backoff")) {
    read_backoff(*backoff, Millis(1), &cluster->reconnect_backoff_base,
                 &cluster->reconnect_backoff_max, "100ms and 5s", diag_);
  }
  set_duration(map, "idle_timeout", Millis(0), &cluster->idle_timeout);
  set_uint(map, "panic_threshold_percent", 0, 100, &cluster->panic_threshold_percent);
  if (auto health_check = map.get("health_check")) {
    read_health_check(*health_check, &cluster->health_check, diag_);
  }
  if (auto outlier = map.get("outlier_detection")) {
    read_outlier_detection(*outlier, &cluster->outlier_detection, diag_);
  }
  if (auto breakers = map.get("circuit_breakers")) {
    read_circuit_breakers(*breakers, &cluster->circuit_breakers, diag_);
  }
  read_header_limits(map, &cluster->max_header_list_bytes, &cluster->max_header_fields, diag_);
  if (auto keepalive = map.get("keepalive")) read_keepalive(*keepalive, &cluster->keepalive, diag_);
}

// A cluster's endpoints come from its static list or from discovery, never from both.
void ConfigReader::read_cluster_endpoints(const MapReader& map, Cluster* cluster) {
  const auto endpoints = map.get("endpoints");
  const DiscoveryType type = cluster->discovery.type;
  if (type != DiscoveryType::Static) {
    if (!endpoints) return;
    const bool dns = type == DiscoveryType::Dns;
    diag_->add(map.key_mark("endpoints"),
               endpoints->path + ": a cluster with " + (dns ? "DNS" : "Kubernetes") +
                   " discovery cannot also list endpoints",
               std::string("its endpoints are ") +
                   (dns ? "the addresses discovery.dns.name resolves to"
                        : "those of the EndpointSlices of discovery.kubernetes.service") +
                   "; remove 'endpoints', or remove 'discovery' to use the static list");
    return;
  }
  const char* sketch =
      "list the backends, e.g. endpoints: [\"127.0.0.1:50052\"], or find them with "
      "discovery: { dns: ... } or discovery: { kubernetes: ... }";
  if (!endpoints) {
    // With a broken 'discovery' (already reported) the endpoints were meant to be discovered.
    if (!map.get("discovery")) map.require("endpoints", sketch);
    return;
  }
  if (endpoints->node.IsSequence() && endpoints->node.size() == 0) {
    diag_->add(endpoints->mark, endpoints->path + ": at least one endpoint is required", sketch);
    return;
  }
  read_endpoints(*endpoints, &cluster->endpoints);
}

void ConfigReader::read_endpoints(const Located& value, std::vector<Endpoint>* endpoints) {
  auto items = read_sequence(value, diag_, "endpoint");
  if (!items) return;
  std::map<std::string, int> seen;  // address -> line
  for (const Located& item : *items) {
    auto endpoint = read_endpoint(item);
    if (!endpoint) continue;
    auto [it, inserted] = seen.emplace(endpoint->address.to_string(), line_of(item.mark));
    if (!inserted) {
      diag_->add(item.mark, item.path + ": duplicate endpoint " + endpoint->address.to_string(),
                 "already listed on line " + std::to_string(it->second) +
                     "; use 'weight' to send it more traffic");
      continue;
    }
    endpoints->push_back(*endpoint);
  }
}

std::optional<Endpoint> ConfigReader::read_endpoint(const Located& value) {
  Endpoint endpoint;
  if (value.node.IsScalar()) {
    auto address = read_address(value, AddressUse::Endpoint);
    if (!address) return std::nullopt;
    endpoint.address = *address;
    return endpoint;
  }
  if (!value.node.IsMap()) {
    diag_->add(value.mark,
               value.path + ": expected an address or a map, got " + describe_node(value.node),
               "write \"10.0.0.1:50051\" or { address: \"10.0.0.1:50051\", weight: 2 }");
    return std::nullopt;
  }
  MapReader map(value, {"address", "weight"}, diag_);
  bool ok = true;
  if (auto address = map.require("address")) {
    auto parsed = read_address(*address, AddressUse::Endpoint);
    if (parsed) endpoint.address = *parsed;
    ok = parsed.has_value();
  } else {
    ok = false;
  }
  if (auto weight = map.get("weight")) {
    auto number = read_int(*weight, 1, 1000, diag_);
    if (number) endpoint.weight = static_cast<uint32_t>(*number);
  }
  return ok ? std::optional(endpoint) : std::nullopt;
}

void ConfigReader::check_cluster_refs(const std::vector<Cluster>& clusters) {
  // Without a complete cluster list every reference would look unknown: the real error (a
  // missing or broken cluster) is already reported.
  if (!clusters_complete_) return;
  std::vector<std::string_view> names;
  for (const Cluster& cluster : clusters) names.push_back(cluster.name);
  for (const ClusterRef& ref : cluster_refs_) {
    if (cluster_names_.count(ref.name) != 0) continue;
    std::string hint = "defined clusters: " + join(names);
    std::string suggestion = closest_match(ref.name, names);
    if (!suggestion.empty()) hint = "did you mean '" + suggestion + "'? " + hint;
    diag_->add(ref.where.mark, ref.where.path + ": unknown cluster '" + ref.name + "'", hint);
  }
}

void ConfigReader::check_admin_address(const Admin& admin, const std::vector<Listener>& listeners) {
  if (!admin.enabled || !admin_address_ || admin.address.port == 0) return;
  for (const Listener& listener : listeners) {
    if (listener.address == admin.address) {
      diag_->add(admin_address_->mark,
                 admin_address_->path + ": " + admin.address.to_string() +
                     " is also the address of listener '" + listener.name + "'",
                 "give the admin endpoint its own port");
      return;
    }
  }
}

void read_document(const std::vector<YAML::Node>& documents, Config* config, Diagnostics* diag) {
  if (documents.empty() || documents[0].IsNull()) {
    diag->add_at(1, 1, "the configuration is empty",
                 "define at least one listener and one cluster");
    return;
  }
  if (documents.size() > 1) {
    diag->add(documents[1].Mark(), "only one YAML document is allowed",
              "remove the '---' separator and merge the documents");
  }
  const YAML::Node& root = documents[0];
  if (!root.IsMap()) {
    diag->add(root.Mark(), "the top level must be a map, got " + describe_node(root),
              "start with keys such as 'listeners:' and 'clusters:'");
    return;
  }
  ConfigReader(diag).read(Located{root, root.Mark(), ""}, config);
}

}  // namespace

std::string ConfigError::to_string() const {
  std::string out =
      file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": error: " + message;
  if (!hint.empty()) out += " (hint: " + hint + ")";
  return out;
}

bool parse_socket_address(std::string_view text, SocketAddress* out, std::string* error) {
  AddressParse parse = parse_address(text);
  if (parse.problem != AddressProblem::None) {
    if (error != nullptr) *error = parse.error;
    return false;
  }
  *out = parse.address;
  return true;
}

namespace {

// A quote never closed: yaml-cpp reports it where the document ends ("end of map not found"),
// or not at all (a single-quoted scalar may silently run to the end), so it is pointed at here.
// Returns false when there is none.
bool report_unterminated_quote(const std::vector<QuotedScalar>& quoted, Diagnostics* diag) {
  if (quoted.empty() || quoted.back().closed) return false;
  const QuotedScalar& q = quoted.back();
  diag->add_at(q.line + 1, q.column + 1, "invalid YAML: unterminated quoted string",
               std::string("the string opened by this ") + q.quote +
                   " is never closed: add the closing " + q.quote);
  return true;
}

// A syntax error after a quoted string that ran over lines that read as keys or list items: its
// closing quote was most likely forgotten (and the next string's opening quote closed it), so
// the error is reported at that quote, with yaml-cpp's own finding in the hint.
void report_yaml_syntax_error(const std::vector<QuotedScalar>& quoted, const YAML::Exception& e,
                              Diagnostics* diag) {
  const std::string found = "invalid YAML: " + e.msg;
  for (const QuotedScalar& q : quoted) {
    if (e.mark.is_null() || q.line > e.mark.line) break;
    if (!q.over_structure) continue;
    diag->add_at(q.line + 1, q.column + 1, "invalid YAML: unterminated quoted string",
                 std::string("the string opened by this ") + q.quote + " runs on to line " +
                     std::to_string(q.end_line + 1) + ", over keys: add its closing " + q.quote +
                     " (yaml-cpp: " + e.msg + " at line " + std::to_string(e.mark.line + 1) + ")");
    return;
  }
  diag->add(e.mark, found, "check the indentation and quoting here");
}

}  // namespace

ParseResult parse_config(std::string_view yaml_text, std::string_view source_name) {
  // yaml-cpp skips a UTF-8 byte order mark without counting it in its positions: dropping it here
  // keeps those positions usable as offsets into the text.
  if (yaml_text.starts_with("\xEF\xBB\xBF")) yaml_text.remove_prefix(3);
  Diagnostics diag{std::string(source_name), yaml_text};
  Config config;
  config.source = std::string(source_name);
  if (auto trap = find_yaml_parser_trap(yaml_text)) {
    diag.add_at(trap->line, trap->column, std::string("invalid YAML: ") + trap->message,
                trap->hint);
    ParseResult result;
    result.errors = diag.take_sorted();
    return result;
  }
  const std::vector<QuotedScalar> quoted = find_quoted_scalars(yaml_text);
  try {
    if (!report_unterminated_quote(quoted, &diag))
      read_document(YAML::LoadAll(std::string(yaml_text)), &config, &diag);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp gives this one a misleading message ("bad file").
    diag.add(e.mark, "invalid YAML: the document is nested too deeply");
  } catch (const YAML::Exception& e) {
    report_yaml_syntax_error(quoted, e, &diag);
  } catch (const std::exception& e) {
    diag.add_at(0, 0, std::string("cannot read the configuration: ") + e.what());
  } catch (...) {
    diag.add_at(0, 0, "cannot read the configuration: unknown error");
  }
  ParseResult result;
  result.errors = diag.take_sorted();
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

std::string likely_meant(std::string_view word, const std::vector<std::string_view>& candidates) {
  return closest_match(word, candidates);
}

ParseResult load_config_file(const std::string& path) {
  auto failure = [&path](std::string message, std::string hint = {}) {
    ParseResult result;
    result.errors.push_back(ConfigError{path, 0, 0, std::move(message), std::move(hint)});
    return result;
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failure(std::string("cannot open config file: ") + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode)) {
    ::close(fd);
    return failure("cannot read config file: it is a directory");
  }
  std::string text;
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      return failure(std::string("cannot read config file: ") + std::strerror(saved));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxFileBytes) {
      ::close(fd);
      return failure("config file is larger than 16MiB", "is this the right file?");
    }
  }
  ::close(fd);
  return parse_config(text, path);
}

}  // namespace h2mesh::config
