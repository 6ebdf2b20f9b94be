#pragma once

// OTLP's ExportTraceServiceRequest (opentelemetry-proto, collector/trace/v1) written in the
// protobuf wire format, by hand: the subset h2mesh sends is a few nested messages of strings,
// varints and fixed64 times, smaller than a libprotobuf dependency and its generated code.
// Runs on the exporter thread.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace h2mesh::observe {

// One attribute of a span or of the resource: a string or an integer value. Records are reused
// in place (the ring's slots), so the strings keep their capacity from one span to the next.
struct SpanAttribute {
  std::string_view key;  // a literal (the call table's attribute names): never copied
  bool is_int = false;
  int64_t int_value = 0;
  std::string string_value;
};

// A finished span, as the worker hands it to the exporter.
struct SpanRecord {
  enum class Kind : uint8_t { Server = 2, Client = 3 };  // OTLP's SpanKind numbers
  static constexpr size_t kMaxAttributes = 16;

  std::array<uint8_t, 16> trace_id{};
  std::array<uint8_t, 8> span_id{};
  std::array<uint8_t, 8> parent_span_id{};  // all zero: a root span (none is sent)
  std::string trace_state;                   // W3C tracestate; empty: none is sent
  Kind kind = Kind::Server;
  uint64_t start_unix_nanos = 0;
  uint64_t end_unix_nanos = 0;
  bool error = false;          // OTLP status ERROR; else UNSET (the conventions' choice)
  std::string status_message;  // with error
  std::string name;
  std::array<SpanAttribute, kMaxAttributes> attributes;
  size_t attribute_count = 0;

  void clear() {
    attribute_count = 0;
    error = false;
    status_message.clear();
    trace_state.clear();
    parent_span_id = {};
  }
  // Adds an attribute; beyond kMaxAttributes it is dropped (the call table is smaller).
  void add(std::string_view key, std::string_view value);
  void add(std::string_view key, int64_t value);
};

// Resource attributes (service.name, host.name, k8s.pod.name, ...), all strings.
struct ResourceAttributes {
  std::vector<std::pair<std::string, std::string>> values;
};

// Replaces *out with an ExportTraceServiceRequest holding `spans` (one ResourceSpans with
// `resource`, one ScopeSpans named "h2mesh" with `scope_version`). Reuse one string from one
// request to the next: its bytes are overwritten, not zeroed again.
void encode_export_request(const ResourceAttributes& resource, std::string_view scope_version,
                           const std::vector<const SpanRecord*>& spans, std::string* out);

}  // namespace h2mesh::observe
