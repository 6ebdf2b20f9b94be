#include "config/resilience_reader.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <charconv>
#include <map>
#include <string>
#include <system_error>

namespace h2mesh::config {

namespace {

constexpr int64_t kMaxReplayBufferBytes = int64_t{64} * 1024 * 1024;
constexpr int64_t kMaxCalls = 10'000'000;
constexpr double kMinCallsPerSecond = 0.01;  // one call per 100 s
constexpr double kMaxCallsPerSecond = 1'000'000;
constexpr int64_t kMaxBurst = 1'000'000;

// Indexed by code. config/ does not depend on grpc/, so the names are spelled out here; they are
// the canonical gRPC names in lower case.
constexpr std::array<std::string_view, 17> kStatusNames = {
    "ok",        "cancelled",      "unknown",           "invalid_argument",   "deadline_exceeded",
    "not_found", "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
    "aborted",   "out_of_range",   "unimplemented",     "internal",           "unavailable",
    "data_loss", "unauthenticated"};
constexpr int kMaxStatusCode = static_cast<int>(kStatusNames.size()) - 1;

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool looks_numeric(std::string_view text) {
  if (text.starts_with('-')) text.remove_prefix(1);
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

std::string status_text(int code) {
  return std::string(kStatusNames[static_cast<size_t>(code)]) + " (" + std::to_string(code) + ")";
}

std::optional<int> read_status_code(const Located& item, Diagnostics* diag) {
  if (!item.node.IsScalar()) {
    diag->add(item.mark,
              item.path + ": expected a gRPC status name or code, got " + describe_node(item.node),
              "e.g. unavailable or 14");
    return std::nullopt;
  }
  const std::string& text = item.node.Scalar();
  std::optional<int> code;
  if (looks_numeric(text)) {
    int64_t number = -1;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec == std::errc() && number >= 0 && number <= kMaxStatusCode) {
      code = static_cast<int>(number);
    } else {
      diag->add(item.mark, item.path + ": status code " + text + " is out of range",
                "gRPC status codes are 1..16; 0 is OK");
      return std::nullopt;
    }
  } else {
    for (size_t i = 0; i < kStatusNames.size() && !code; ++i) {
      if (equals_ignoring_case(text, kStatusNames[i])) code = static_cast<int>(i);
    }
  }
  if (!code) {
    const std::vector<std::string_view> errors(kStatusNames.begin() + 1, kStatusNames.end());
    const std::string suggestion = closest_match(text, errors);
    diag->add(item.mark, item.path + ": unknown gRPC status '" + text + "'",
              suggestion.empty() ? "write a status name (" + join(errors) + ") or a code 1..16"
                                 : "did you mean '" + suggestion + "'?");
    return std::nullopt;
  }
  if (*code == 0) {
    diag->add(item.mark, item.path + ": '" + text + "' is not an error status",
              "OK (0) means the call succeeded, so it is never retried nor counted as a failure; "
              "list error statuses such as unavailable or 14");
    return std::nullopt;
  }
  return code;
}

void read_retry_budget(const Located& value, RetryPolicy* retry, Diagnostics* diag) {
  MapReader map(value, {"ratio", "min_per_second"}, diag);
  if (auto ratio = map.get("ratio")) {
    if (auto number = read_decimal(*ratio, 0, 10, diag)) retry->budget_ratio = *number;
  }
  set_uint(map, "min_per_second", 0, 100000, &retry->budget_min_per_second, diag);
}

}  // namespace

std::optional<std::vector<int>> read_status_codes(const Located& value, Diagnostics* diag) {
  if (value.node.IsScalar()) {
    diag->add(value.mark, value.path + ": expected a sequence, got " + describe_node(value.node),
              "write a list, e.g. [" + value.node.Scalar() + "]");
    return std::nullopt;
  }
  auto items = read_sequence(value, diag);
  if (!items) return std::nullopt;
  std::vector<int> codes;
  std::map<int, size_t> seen;  // code -> index of its first item
  bool ok = true;
  for (size_t i = 0; i < items->size(); ++i) {
    const Located& item = (*items)[i];
    auto code = read_status_code(item, diag);
    if (!code) {
      ok = false;
      continue;
    }
    auto [it, inserted] = seen.emplace(*code, i);
    if (!inserted) {
      const Located& first = (*items)[it->second];
      diag->add(item.mark, item.path + ": " + status_text(*code) + " is listed twice",
                "already listed as item " + std::to_string(it->second) + " on line " +
                    std::to_string(line_of(first.mark)) + "; remove one");
      ok = false;
      continue;
    }
    codes.push_back(*code);
  }
  return ok ? std::optional(codes) : std::nullopt;
}

void read_backoff(const Located& value, Millis min, Millis* base, Millis* max,
                  std::string_view defaults, Diagnostics* diag) {
  MapReader map(value, {"base", "max"}, diag);
  const bool base_ok = set_duration(map, "base", min, base, diag);
  const bool max_ok = set_duration(map, "max", min, max, diag);
  if (base_ok && max_ok && *base > *max) {
    diag->add(value.mark,
              value.path + ": base (" + format_millis(*base) + ") is larger than max (" +
                  format_millis(*max) + ")",
              "base is the first delay and max caps it, so base must be <= max; the defaults are " +
                  std::string(defaults));
  }
}

void read_retry_policy(const Located& value, RetryPolicy* retry, Diagnostics* diag) {
  MapReader map(value, {"max_attempts", "retry_on", "backoff", "budget", "replay_buffer_bytes"},
                diag);
  set_uint(map, "max_attempts", 1, RetryPolicy::kMaxAttemptsLimit, &retry->max_attempts, diag);
  if (auto retry_on = map.get("retry_on")) {
    if (auto codes = read_status_codes(*retry_on, diag)) retry->retry_on = std::move(*codes);
  }
  if (auto backoff = map.get("backoff")) {
    read_backoff(*backoff, Millis(1), &retry->backoff_base, &retry->backoff_max, "25ms and 250ms",
                 diag);
  }
  if (auto budget = map.get("budget")) read_retry_budget(*budget, retry, diag);
  if (auto size = map.get("replay_buffer_bytes")) {
    if (auto bytes = read_size(*size, 0, kMaxReplayBufferBytes, diag)) {
      retry->replay_buffer_bytes = static_cast<uint32_t>(*bytes);
    }
  }
}

void read_health_check(const Located& value, HealthCheck* health_check, Diagnostics* diag) {
  if (!value.node.IsMap()) {
    // "health_check:" alone or "health_check: true" reads as "turn it on"; say how.
    diag->add(value.mark, value.path + ": expected a map, got " + describe_node(value.node),
              "write 'health_check: {}' to enable health checks with the defaults");
    return;
  }
  MapReader map(value,
                {"enabled", "service", "interval", "interval_jitter", "timeout",
                 "healthy_threshold", "unhealthy_threshold"},
                diag);
  if (!map.ok()) return;
  health_check->enabled = true;
  if (auto enabled = map.get("enabled")) {
    if (auto flag = read_bool(*enabled, diag)) health_check->enabled = *flag;
  }
  if (auto service = map.get("service")) {
    if (auto text = read_string(*service, diag, /*allow_empty=*/true)) {
      health_check->service = *text;
    }
  }
  const bool interval_ok = set_duration(map, "interval", Millis(10), &health_check->interval, diag);
  set_duration(map, "interval_jitter", Millis(0), &health_check->interval_jitter, diag);
  const bool timeout_ok = set_duration(map, "timeout", Millis(1), &health_check->timeout, diag);
  set_uint(map, "healthy_threshold", 1, 100, &health_check->healthy_threshold, diag);
  set_uint(map, "unhealthy_threshold", 1, 100, &health_check->unhealthy_threshold, diag);
  if (interval_ok && timeout_ok && health_check->timeout > health_check->interval) {
    diag->add(cross_check_mark(map, "timeout", "interval"),
              value.path + ": timeout (" + format_millis(health_check->timeout) +
                  ") is longer than interval (" + format_millis(health_check->interval) + ")",
              "a check must end before the next one starts: make timeout <= interval (defaults: "
              "timeout 1s, interval 5s)");
  }
}

void read_outlier_detection(const Located& value, OutlierDetection* outlier, Diagnostics* diag) {
  MapReader map(value,
                {"enabled", "consecutive_failures", "failure_statuses", "base_ejection_time",
                 "max_ejection_time", "max_ejection_percent"},
                diag);
  if (auto enabled = map.get("enabled")) {
    if (auto flag = read_bool(*enabled, diag)) outlier->enabled = *flag;
  }
  set_uint(map, "consecutive_failures", 1, 1000, &outlier->consecutive_failures, diag);
  if (auto statuses = map.get("failure_statuses")) {
    if (auto codes = read_status_codes(*statuses, diag)) outlier->failure_statuses = *codes;
  }
  const bool base_ok =
      set_duration(map, "base_ejection_time", Millis(1), &outlier->base_ejection_time, diag);
  const bool max_ok =
      set_duration(map, "max_ejection_time", Millis(1), &outlier->max_ejection_time, diag);
  set_uint(map, "max_ejection_percent", 0, 100, &outlier->max_ejection_percent, diag);
  if (base_ok && max_ok && outlier->base_ejection_time > outlier->max_ejection_time) {
    diag->add(cross_check_mark(map, "max_ejection_time", "base_ejection_time"),
              value.path + ": max_ejection_time (" + format_millis(outlier->max_ejection_time) +
                  ") is shorter than base_ejection_time (" +
                  format_millis(outlier->base_ejection_time) + ")",
              "max_ejection_time caps the growing ejection time, so it must be >= "
              "base_ejection_time (defaults: 30s and 300s)");
  }
}

void read_circuit_breakers(const Located& value, CircuitBreakers* breakers, Diagnostics* diag) {
  MapReader map(value, {"max_calls", "max_calls_per_endpoint"}, diag);
  set_uint(map, "max_calls", 0, kMaxCalls, &breakers->max_calls, diag);
  set_uint(map, "max_calls_per_endpoint", 0, kMaxCalls, &breakers->max_calls_per_endpoint, diag);
}

void read_header_limits(const MapReader& map, uint32_t* bytes, uint32_t* fields,
                        Diagnostics* diag) {
  if (auto value = map.get("max_header_list_bytes")) {
    if (auto size = read_size(*value, 256, kMaxHeaderListBytesLimit, diag)) {
      *bytes = static_cast<uint32_t>(*size);
    }
  }
  set_uint(map, "max_header_fields", 1, 10000, fields, diag);
}

namespace {
void read_frame_budget(const Located& value, FrameBudget* budget, Diagnostics* diag) {
  MapReader map(value, {"burst", "per_second"}, diag);
  set_uint(map, "burst", 0, 1000000, &budget->burst, diag);
  set_uint(map, "per_second", 0, 1000000, &budget->per_second, diag);
}
}  // namespace

void read_keepalive(const Located& value, Keepalive* keepalive, Diagnostics* diag) {
  MapReader map(value, {"interval", "timeout"}, diag);
  if (auto interval = map.get("interval")) {
    if (auto d = read_duration(*interval, Millis(0), diag)) {
      if (d->count() != 0 && *d < Millis(10)) {
        diag->add(interval->mark, interval->path + ": must be 0 (off) or at least 10ms",
                  "gRPC clients use 10s or more; 0 turns keepalive off");
      } else {
        keepalive->interval = *d;
      }
    }
  }
  if (auto timeout = map.get("timeout")) {
    if (auto d = read_duration(*timeout, Millis(10), diag)) keepalive->timeout = *d;
  }
}

void read_flood_limits(const Located& value, FloodLimits* limits, Diagnostics* diag) {
  MapReader map(value,
                {"empty_frames", "priority", "settings", "ping", "rst_stream",
                 "closed_stream_answers"},
                diag);
  const std::pair<const char*, FrameBudget*> budgets[] = {
      {"empty_frames", &limits->empty_frames},
      {"priority", &limits->priority},
      {"settings", &limits->settings},
      {"ping", &limits->ping},
      {"rst_stream", &limits->rst_stream},
      {"closed_stream_answers", &limits->closed_stream_answers},
  };
  for (const auto& [key, budget] : budgets) {
    if (auto item = map.get(key)) read_frame_budget(*item, budget, diag);
  }
}

void read_rate_limit(const Located& value, std::optional<RateLimit>* limit, Diagnostics* diag) {
  MapReader map(value, {"calls_per_second", "burst"}, diag);
  if (!map.ok()) return;
  RateLimit parsed_limit;
  bool ok = true;
  if (auto rate =
          map.require("calls_per_second", "e.g. rate_limit: { calls_per_second: 100, burst: 50 }")) {
    // Zero and negative rates get their own message: the range alone would not say why. The
    // range is spelled out because format_decimal writes 1000000 as 1e+06.
    double number = 0;
    std::string error;
    std::string hint;
    const bool parsed = rate->node.IsScalar() &&
                        parse_decimal_text(rate->node.Scalar(), &number, &error, &hint);
    if (parsed && number <= 0) {
      diag->add(rate->mark, rate->path + ": must be greater than 0, got " + rate->node.Scalar(),
                "a rate of 0 would refuse every call; remove 'rate_limit' for no limit");
      ok = false;
    } else if (parsed && (number < kMinCallsPerSecond || number > kMaxCallsPerSecond)) {
      diag->add(rate->mark, rate->path + ": " + rate->node.Scalar() + " is out of range",
                "allowed range: 0.01..1000000 calls per second");
      ok = false;
    } else if (auto cps = read_decimal(*rate, kMinCallsPerSecond, kMaxCallsPerSecond, diag)) {
      parsed_limit.calls_per_second = *cps;
    } else {
      ok = false;
    }
  } else {
    ok = false;
  }
  // One second of calls unless said otherwise, and at least one call.
  parsed_limit.burst =
      static_cast<uint32_t>(std::max(1.0, std::ceil(parsed_limit.calls_per_second)));
  if (!set_uint(map, "burst", 1, kMaxBurst, &parsed_limit.burst, diag)) ok = false;
  if (ok) *limit = parsed_limit;
}

}  // namespace h2mesh::config
