#include "observe/trace_observer.h"

#include <algorithm>
#include <string_view>

#include "grpc/status.h"
#include "observe/trace_counters.h"

namespace h2mesh::observe {
namespace {

// The attribute that carries the port of an "<x>.address" attribute (OpenTelemetry keeps host
// and port apart); null for attributes that are not an address. Evaluated at compile time for the
// call table's attributes (fill_call_span).
constexpr const char* port_attribute(const char* address_attribute) {
  if (!address_attribute) return nullptr;
  const std::string_view a = address_attribute;
  if (a == "server.address") return "server.port";
  if (a == "network.peer.address") return "network.peer.port";
  return nullptr;
}

// "host:port", "[v6]:port" or a bare host: the address attribute, and the port as an integer.
void add_address(SpanRecord* span, std::string_view attribute, std::string_view port_key,
                 std::string_view value) {
  size_t colon = value.rfind(':');
  const bool bracketed = value.starts_with('[');
  if (colon != std::string_view::npos && (!bracketed || value[colon - 1] == ']') &&
      (bracketed || value.find(':') == colon)) {
    std::string_view host = value.substr(0, colon);
    if (bracketed) host = host.substr(1, host.size() - 2);
    int64_t port = 0;
    std::string_view digits = value.substr(colon + 1);
    bool numeric = !digits.empty() && digits.size() <= 5;
    for (char c : digits) {
      if (c < '0' || c > '9') numeric = false;
      else port = port * 10 + (c - '0');
    }
    if (numeric) {
      span->add(attribute, host);
      span->add(port_key, port);
      return;
    }
  }
  span->add(attribute, value);
}

// `port_key`: port_attribute(attribute).
void add_field(SpanRecord* span, const char* attribute, const char* port_key,
               std::string_view value) {
  if (!attribute || value.empty()) return;
  if (port_key) add_address(span, attribute, port_key, value);
  else span->add(attribute, value);
}

void add_field(SpanRecord* span, const char* attribute, const char*, int64_t value) {
  // A call without a status has no rpc.grpc.status_code (the only field that can be -1).
  if (!attribute || value == proxy::kNoGrpcStatus) return;
  span->add(attribute, value);
}

void add_field(SpanRecord*, const char*, const char*, Duration) {}  // durations are the span's own times

// "helloworld.Greeter/SayHello", the OpenTelemetry RPC conventions' span name.
void set_name(const proxy::CallEvent& call, SpanRecord* span) {
  if (!call.service.empty()) {
    span->name.assign(call.service);
    span->name += '/';
    span->name.append(call.method);
  } else if (!call.method.empty()) {
    span->name.assign(call.method);
  } else {
    span->name.assign("h2mesh");
  }
}

// The conventions' status for gRPC: a server span is an error only for the statuses that say
// the server failed; a client span for any status but OK. No status at all is an error both ways.
bool server_error(int64_t status) {
  switch (status) {
    case 2:   // UNKNOWN
    case 4:   // DEADLINE_EXCEEDED
    case 12:  // UNIMPLEMENTED
    case 13:  // INTERNAL
    case 14:  // UNAVAILABLE
    case 15:  // DATA_LOSS
    case proxy::kNoGrpcStatus:
      return true;
    default:
      return false;
  }
}

void set_status(SpanRecord* span, int64_t status, bool error, std::string_view why) {
  span->error = error;
  if (!error) return;
  if (status >= 0) span->status_message.assign(grpc::status_name(static_cast<int>(status)));
  else span->status_message.assign(why.empty() ? std::string_view("no grpc-status") : why);
}

// What a call's span and its attempts' spans share: the trace, the ids, the times, the name.
void fill_common(const proxy::CallEvent& call, const std::array<uint8_t, 8>& span_id,
                 const std::array<uint8_t, 8>& parent, SpanRecord::Kind kind, TimePoint start,
                 TimePoint end, SpanRecord* span, const WallAnchor& anchor) {
  span->trace_id = call.trace.trace_id;
  span->span_id = span_id;
  span->parent_span_id = parent;
  span->trace_state.assign(call.trace.tracestate);
  span->kind = kind;
  span->start_unix_nanos = anchor.unix_nanos(start);
  span->end_unix_nanos = anchor.unix_nanos(end);
  set_name(call, span);
  span->add("rpc.system", std::string_view("grpc"));
}

}  // namespace

void fill_call_span(const proxy::CallEvent& call, SpanRecord* span, const WallAnchor& anchor) {
  fill_common(call, call.trace.span_id, call.trace.parent_span_id, SpanRecord::Kind::Server,
              call.start, call.end, span, anchor);
#define H2MESH_SPAN_FIELD(type, member, name, kind, attribute) \
  {                                                                 \
    constexpr const char* port_key = port_attribute(attribute);     \
    add_field(span, attribute, port_key, call.member);              \
  }
  H2MESH_CALL_FIELDS(H2MESH_SPAN_FIELD)
#undef H2MESH_SPAN_FIELD
  set_status(span, call.grpc_status, server_error(call.grpc_status), {});
}

void fill_attempt_span(const proxy::CallEvent& call, const proxy::AttemptEvent& attempt,
                       SpanRecord* span, const WallAnchor& anchor) {
  fill_common(call, attempt.span_id, call.trace.span_id, SpanRecord::Kind::Client, attempt.start,
              attempt.end, span, anchor);
  add_field(span, "rpc.service", nullptr, call.service);
  add_field(span, "rpc.method", nullptr, call.method);
  add_field(span, "network.peer.address", "network.peer.port", attempt.upstream);
  add_field(span, "rpc.grpc.status_code", nullptr, attempt.grpc_status);
  add_field(span, "h2mesh.cluster", nullptr, call.cluster);
  span->add("h2mesh.attempt", attempt.number);
  add_field(span, "error.type", nullptr, attempt.error);
  set_status(span, attempt.grpc_status, attempt.grpc_status != 0, attempt.error);
}

SpanRecord* TraceObserver::begin_span() {
  SpanRecord* span = ring_->begin_push();
  if (!span) trace_counters().spans_dropped.fetch_add(1, std::memory_order_relaxed);
  return span;
}

void TraceObserver::on_attempt_end(const proxy::CallEvent& call, const proxy::AttemptEvent& attempt) {
  if (!call.trace.valid || !call.trace.sampled) return;
  if (std::all_of(attempt.span_id.begin(), attempt.span_id.end(), [](uint8_t b) { return b == 0; }))
    return;  // started before tracing was turned on
  if (SpanRecord* span = begin_span()) {
    anchor_.refresh(attempt.end);
    fill_attempt_span(call, attempt, span, anchor_);
    ring_->commit_push();
  }
}

void TraceObserver::on_call_end(const proxy::CallEvent& call) {
  if (!call.trace.valid || !call.trace.sampled) return;
  if (std::all_of(call.trace.span_id.begin(), call.trace.span_id.end(), [](uint8_t b) { return b == 0; }))
    return;  // a caller's trace that h2mesh did not record (tracing was off at the call's start)
  if (SpanRecord* span = begin_span()) {
    anchor_.refresh(call.end);
    fill_call_span(call, span, anchor_);
    ring_->commit_push();
  }
}

}  // namespace h2mesh::observe
