#pragma once

// Plain configuration structs. Parsed and validated by config/parser.h; immutable once built and
// shared with workers as std::shared_ptr<const Config>.

#include <chrono>
#include <cstdint>
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

struct Route {
  std::optional<RouteMatch> match;  // absent: the default route (matches every call)
  std::string cluster;
  int line = 0;  // config line, for logs
};

struct Listener {
  std::string name;
  SocketAddress address;
  uint32_t max_concurrent_streams = 1024;  // advertised to clients in SETTINGS
  std::vector<Route> routes;               // first match wins; no match → UNIMPLEMENTED
};

enum class LbPolicy { RoundRobin, Random, LeastRequest };
const char* lb_policy_name(LbPolicy p);

struct Endpoint {
  SocketAddress address;
  uint32_t weight = 1;
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
};

struct Admin {
  bool enabled = true;
  SocketAddress address{"127.0.0.1", 9901};
};

struct Buffers {
  // HTTP/2 stream window we advertise on both sides: the most a single call may have buffered
  // in the proxy per direction.
  uint32_t stream_window_bytes = 1 << 20;
  // Connection-level window we advertise on both sides.
  uint32_t connection_window_bytes = 16 << 20;
};

struct Config {
  std::string source;     // file the config came from (for messages)
  uint32_t workers = 0;   // 0: one per core
  std::string log_level = "info";
  Millis drain_timeout{30000};
  Admin admin;
  Buffers buffers;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;

  const Cluster* find_cluster(const std::string& name) const {
    for (const auto& c : clusters)
      if (c.name == name) return &c;
    return nullptr;
  }
};

}  // namespace h2mesh::config
