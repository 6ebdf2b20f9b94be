#pragma once

// Readers for the settings that decide what happens when backends fail or are overloaded: a
// route's retry policy, rate limits, and a cluster's health checks, outlier detection, circuit
// breakers and backoffs.
// Internal to config/: only its readers and the config tests include this. Like yaml_reader.h,
// everything runs on the thread calling parse_config, reports every problem to `diag` and only
// writes fields whose value is valid.

#include <optional>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace h2mesh::config {

// A sequence of gRPC status codes, each a name in lower or upper case ("unavailable",
// "RESOURCE_EXHAUSTED") or a number 1..16. OK (0) and repeated codes are errors. Returns the codes
// in the order written, or nullopt when anything was wrong.
std::optional<std::vector<int>> read_status_codes(const Located& value, Diagnostics* diag);

// { base, max }, both at least `min` and base <= max. `defaults` names the defaults in the hint,
// e.g. "100ms and 5s".
void read_backoff(const Located& value, Millis min, Millis* base, Millis* max,
                  std::string_view defaults, Diagnostics* diag);

void read_retry_policy(const Located& value, RetryPolicy* retry, Diagnostics* diag);
// A present map enables health checks unless it says `enabled: false`.
void read_health_check(const Located& value, HealthCheck* health_check, Diagnostics* diag);
void read_outlier_detection(const Located& value, OutlierDetection* outlier, Diagnostics* diag);
void read_circuit_breakers(const Located& value, CircuitBreakers* breakers, Diagnostics* diag);
// `max_header_list_bytes` (a size, 256 bytes .. 1 MiB) and `max_header_fields` (1 .. 10000) of
// a listener or a cluster, when present.
void read_header_limits(const MapReader& map, uint32_t* bytes, uint32_t* fields, Diagnostics* diag);
// { empty_frames, priority, settings, ping, rst_stream, closed_stream_answers }, each a
// { burst, per_second } map; burst 0 turns that budget off.
void read_flood_limits(const Located& value, FloodLimits* limits, Diagnostics* diag);
// { interval, timeout }: interval 0 (off) or at least 10ms; timeout at least 10ms.
void read_keepalive(const Located& value, Keepalive* keepalive, Diagnostics* diag);
// { calls_per_second, burst } of a route or a listener; *limit is set only when both are valid.
void read_rate_limit(const Located& value, std::optional<RateLimit>* limit, Diagnostics* diag);

}  // namespace h2mesh::config
