#include "config/tracing_reader.h"

#include <cstdlib>

namespace h2mesh::config {
namespace {

constexpr double kMinRatio = 0.0;
constexpr double kMaxRatio = 1.0;

}  // namespace

bool parse_sample_ratio(std::string_view text, double* ratio, std::string* error) {
  const std::string range = format_decimal(kMinRatio) + ".." + format_decimal(kMaxRatio);
  double number = 0;
  std::string hint;
  if (!parse_decimal_text(text, &number, error, &hint)) {
    *error += " (" + range + ", e.g. 0.1)";
    return false;
  }
  if (number < kMinRatio || number > kMaxRatio) {
    *error = "'" + std::string(text) + "' is out of range (" + range + ")";
    return false;
  }
  *ratio = number;
  return true;
}

bool parse_otlp_endpoint(const std::string& url, Tracing* tracing, std::string* error) {
  constexpr std::string_view kScheme = "http://";
  if (url.starts_with("https://")) {
    *error = "https is not supported: export to a collector on the node or in the pod over http";
    return false;
  }
  if (!url.starts_with(kScheme)) {
    *error = "must start with http://";
    return false;
  }
  std::string_view rest = std::string_view(url).substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {  // [IPv6]:port
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *error = "an IPv6 address needs its closing ']'";
      return false;
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        *error = "expected ':' and a port after ']'";
        return false;
      }
      port = after.substr(1);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) {
    *error = "has no host";
    return false;
  }
  if (authority.find('@') != std::string_view::npos || path.find_first_of("?# ") != std::string_view::npos) {
    *error = "must be http://host:port/path, without user, query or fragment";
    return false;
  }
  uint16_t port_number = 4318;
  if (!port.empty() || authority.ends_with(':')) {
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos ||
        std::atoi(std::string(port).c_str()) < 1 || std::atoi(std::string(port).c_str()) > 65535) {
      *error = "has a bad port '" + std::string(port) + "' (1..65535)";
      return false;
    }
    port_number = static_cast<uint16_t>(std::atoi(std::string(port).c_str()));
  }
  tracing->otlp_host = std::string(host);
  tracing->otlp_port = port_number;
  tracing->otlp_path = path.empty() || path == "/" ? "/v1/traces" : std::string(path);
  return true;
}

void read_tracing(const Located& value, Tracing* tracing, Diagnostics* diag) {
  MapReader map(value,
                {"otlp_endpoint", "sample_ratio", "service_name", "batch_size", "batch_interval",
                 "queue_size", "export_timeout"},
                diag);
  if (!map.ok()) return;
  if (auto v = map.require("otlp_endpoint",
                           "where spans go, e.g. otlp_endpoint: http://127.0.0.1:4318/v1/traces")) {
    if (auto text = read_string(*v, diag)) {
      std::string error;
      if (parse_otlp_endpoint(*text, tracing, &error)) {
        tracing->otlp_endpoint = *text;
        tracing->enabled = true;
      } else {
        diag->add(v->mark, v->path + ": '" + *text + "' " + error,
                  "an OTLP/HTTP receiver, e.g. http://otel-collector:4318/v1/traces");
      }
    }
  }
  if (auto v = map.get("sample_ratio")) {
    if (auto ratio = read_decimal(*v, kMinRatio, kMaxRatio, diag)) tracing->sample_ratio = *ratio;
  }
  if (auto v = map.get("service_name")) {
    if (auto text = read_string(*v, diag)) tracing->service_name = *text;
  }
  set_uint(map, "batch_size", 1, 65536, &tracing->batch_size, diag);
  set_duration(map, "batch_interval", Millis(10), &tracing->batch_interval, diag);
  set_uint(map, "queue_size", 16, 1 << 20, &tracing->queue_size, diag);
  set_duration(map, "export_timeout", Millis(100), &tracing->export_timeout, diag);
  if (tracing->batch_size > tracing->queue_size) {
    diag->add(cross_check_mark(map, "batch_size", "queue_size"),
              value.path + ": batch_size " + std::to_string(tracing->batch_size) +
                  " is larger than queue_size " + std::to_string(tracing->queue_size),
              "a batch is taken from the queues: keep batch_size <= queue_size");
  }
}

}  // namespace h2mesh::config
