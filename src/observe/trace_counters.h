#pragma once

// Tracing's counters, process-wide: they outlive the exporter a reload replaces, so that they
// only ever go up. Written by the exporter thread and (drops) by workers, read by the admin
// thread: relaxed atomics, touched per batch or per dropped span, never per exported call.

#include <atomic>
#include <cstdint>
#include <string>

namespace h2mesh::observe {

struct TraceCounters {
  std::atomic<uint64_t> spans_exported{0};  // accepted by the receiver (2xx)
  std::atomic<uint64_t> spans_dropped{0};   // a worker's queue was full, or tracing was replaced
  std::atomic<uint64_t> spans_failed{0};    // their export failed for good
  // Export requests by outcome: ok (2xx), retryable (429, 502, 503, 504), rejected (another
  // status), error (no answer: connection refused or lost, timeout).
  std::atomic<uint64_t> requests_ok{0};
  std::atomic<uint64_t> requests_retryable{0};
  std::atomic<uint64_t> requests_rejected{0};
  std::atomic<uint64_t> requests_error{0};
  // Connections opened to the receiver: one is kept from batch to batch, so this grows only when
  // the receiver closes it (or fails).
  std::atomic<uint64_t> connections{0};
};

TraceCounters& trace_counters();

// The counters in Prometheus text: h2mesh_trace_spans_total{result},
// h2mesh_trace_export_requests_total{result} and h2mesh_trace_export_connections_total. Any
// thread.
std::string render_trace_metrics();

}  // namespace h2mesh::observe
