#include "observe/trace_counters.h"

namespace h2mesh::observe {
namespace {

void sample(std::string* out, const char* name, const char* result, const std::atomic<uint64_t>& v) {
  *out += name;
  *out += "{result=\"";
  *out += result;
  *out += "\"} ";
  *out += std::to_string(v.load(std::memory_order_relaxed));
  *out += '\n';
}

}  // namespace

TraceCounters& trace_counters() {
  static TraceCounters counters;
  return counters;
}

std::string render_trace_metrics() {
  const TraceCounters& c = trace_counters();
  std::string out;
  out += "# HELP h2mesh_trace_spans_total Spans of sampled calls by what became of them.\n";
  out += "# TYPE h2mesh_trace_spans_total counter\n";
  sample(&out, "h2mesh_trace_spans_total", "exported", c.spans_exported);
  sample(&out, "h2mesh_trace_spans_total", "dropped", c.spans_dropped);
  sample(&out, "h2mesh_trace_spans_total", "failed", c.spans_failed);
  out += "# HELP h2mesh_trace_export_requests_total OTLP export requests by outcome.\n";
  out += "# TYPE h2mesh_trace_export_requests_total counter\n";
  sample(&out, "h2mesh_trace_export_requests_total", "ok", c.requests_ok);
  sample(&out, "h2mesh_trace_export_requests_total", "retryable", c.requests_retryable);
  sample(&out, "h2mesh_trace_export_requests_total", "rejected", c.requests_rejected);
  sample(&out, "h2mesh_trace_export_requests_total", "error", c.requests_error);
  out += "# HELP h2mesh_trace_export_connections_total Connections opened to the OTLP receiver "
         "(one is kept from batch to batch).\n";
  out += "# TYPE h2mesh_trace_export_connections_total counter\n";
  out += "h2mesh_trace_export_connections_total ";
  out += std::to_string(c.connections.load(std::memory_order_relaxed));
  out += '\n';
  return out;
}

}  // namespace h2mesh::observe
