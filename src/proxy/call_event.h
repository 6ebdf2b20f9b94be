#pragma once

// The one place where a call and each of its attempts report their end. The downstream stream
// fills a CallEvent (and an AttemptEvent per attempt) and hands it to the worker's observers:
// the metrics (counters and histograms), the access log, the tracer. None of them counts
// anything where it happens in the data path.
//
// What a call reports is one table, H2MESH_CALL_FIELDS: a new per-call stat is one line there
// (and the line that fills it in proxy/downstream.cc). The access log names its fields after the
// table (`access_log.fields`), and spans take their attributes from it.

#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/call_fields.h"
#include "common/time.h"

namespace h2mesh::proxy {

struct ClusterStats;
struct EndpointStats;
struct ListenerStats;

// W3C trace context of a call (https://www.w3.org/TR/trace-context/): the trace it belongs to,
// the span h2mesh made for it, and the caller's span. All zero (valid = false) when tracing is
// off and the request carried no valid traceparent.
struct TraceIds {
  std::array<uint8_t, 16> trace_id{};
  std::array<uint8_t, 8> span_id{};         // h2mesh's span for the call
  std::array<uint8_t, 8> parent_span_id{};  // the caller's (all zero for a new trace)
  bool valid = false;
  bool sampled = false;
  // The caller's `tracestate` when its traceparent was continued and a tracer records the call;
  // a view of the request's header, valid as long as the call.
  std::string_view tracestate;
};

struct CallEvent {
#define H2MESH_CALL_MEMBER(type, member, name, kind, attribute) type member{};
  H2MESH_CALL_FIELDS(H2MESH_CALL_MEMBER)
#undef H2MESH_CALL_MEMBER

  // Not fields of the table:
  TimePoint start{};  // request headers complete (the worker loop's clock)
  TimePoint end{};    // the stream closed
  TraceIds trace;
  // Where the call counts (null when it was answered before a cluster was chosen / before an
  // endpoint was picked). The metrics observer adds into them without a lookup.
  ClusterStats* cluster_stats = nullptr;
  EndpointStats* endpoint_stats = nullptr;
  ListenerStats* listener_stats = nullptr;  // the connection's listener's (its cached entry)
};

// -1 in grpc_status: the call or attempt ended without a status (reset, connection lost).
constexpr int64_t kNoGrpcStatus = -1;

struct AttemptEvent {
  int64_t number = 0;  // 1 for the first attempt
  std::string_view upstream;  // the endpoint's address
  TimePoint start{};          // endpoint picked
  TimePoint end{};            // response complete, failed, or abandoned
  int64_t grpc_status = kNoGrpcStatus;
  std::string_view error;     // why it failed without a status ("" otherwise)
  std::array<uint8_t, 8> span_id{};  // the attempt's span (tracing), the upstream's parent
  ClusterStats* cluster_stats = nullptr;
  EndpointStats* endpoint_stats = nullptr;
};

// A worker's observer of call ends. Called on the worker thread, in the data path: it must not
// block, and what it keeps must be bounded.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  virtual void on_attempt_end(const CallEvent& call, const AttemptEvent& attempt) = 0;
  virtual void on_call_end(const CallEvent& call) = 0;
};

// The observers a worker's calls report to, in order; the metrics observer is always first.
// It reads nothing of the call at an attempt's end (only the AttemptEvent), so while it is alone
// the stream does not describe the call for each attempt.
using CallObservers = std::vector<CallObserver*>;

// The metrics observer: counts the call's status and records its durations and attempts in the
// listener's, the cluster's and the endpoint's histograms (proxy/stats.h). One per worker, no
// state of its own.
class MetricsObserver final : public CallObserver {
 public:
  void on_attempt_end(const CallEvent& call, const AttemptEvent& attempt) override;
  void on_call_end(const CallEvent& call) override;
};

}  // namespace h2mesh::proxy
