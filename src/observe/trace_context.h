#pragma once

// W3C Trace Context (https://www.w3.org/TR/trace-context/) as h2mesh uses it: reading a call's
// `traceparent`, writing the one its upstream request carries, and the head-based sampling
// decision. Pure functions and a per-worker id source: the data path calls them on the worker
// thread, nothing here locks or allocates.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/random.h"

namespace h2mesh::observe {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

// A traceparent as read: only the fields version 00 defines, whatever version it came in.
struct TraceParent {
  TraceId trace_id{};
  SpanId parent_id{};
  uint8_t flags = 0;
  bool sampled() const { return (flags & 0x01) != 0; }
};

// `00-<32 hex>-<16 hex>-<2 hex>`: what format_traceparent writes.
constexpr size_t kTraceparentLength = 55;

// The caller's trace context, or nullopt when the value is not one h2mesh may continue (the
// caller then starts a new trace). Rules of the spec: lower-case hex only; version ff is
// invalid; version 00 is exactly 55 characters; a higher version is read as far as version 00
// goes, and may only go on after a '-' (fields a later version adds are ignored); an all-zero
// trace id or parent id is invalid.
std::optional<TraceParent> parse_traceparent(std::string_view value);

// Writes version 00 with `span_id` as the parent id and only the sampled flag set or not: the
// flags h2mesh does not know are not passed on (the spec's rule for version 00). `out` gets
// exactly kTraceparentLength characters, no terminator.
void format_traceparent(const TraceId& trace_id, const SpanId& span_id, bool sampled,
                        char (&out)[kTraceparentLength]);

// Lower-case hex of an id, for logs and tests.
template <size_t N>
std::array<char, 2 * N> to_hex(const std::array<uint8_t, N>& id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::array<char, 2 * N> out{};
  for (size_t i = 0; i < N; ++i) {
    out[2 * i] = kDigits[id[i] >> 4];
    out[2 * i + 1] = kDigits[id[i] & 0x0f];
  }
  return out;
}

// One worker's source of trace and span ids and of sampling decisions for new traces. Its
// random source is seeded from the kernel (getrandom), not from the worker's seed: sidecars in
// different pods often run as pid 1 with the same worker numbers, and their ids must not collide.
class TraceSampler {
 public:
  // `ratio` in [0, 1]: the share of new traces (calls without a valid traceparent) recorded.
  explicit TraceSampler(double ratio);
  // For tests: a fixed seed.
  TraceSampler(double ratio, uint64_t seed) : ratio_(ratio), random_(seed) {}

  double ratio() const { return ratio_; }
  TraceId new_trace_id();  // never all zero
  SpanId new_span_id();    // never all zero
  // Head-based: a call that continues a trace follows its caller's sampled flag; a new trace is
  // sampled with probability `ratio`.
  bool sample(const std::optional<TraceParent>& parent);

 private:
  double ratio_;
  Random random_;
};

// A call's trace as the proxy hop sees it: the trace it is in, the span h2mesh records for it
// and the caller's span (all zero for a new trace).
struct CallTrace {
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent_span_id{};
  bool sampled = false;
  bool continued = false;  // the caller's traceparent was valid
};

// Whether a `tracestate` value may go on a span as OTLP's trace_state (a protobuf string, so
// UTF-8): W3C's at most 512 characters, printable ASCII only. Others are passed on upstream
// untouched but left off the spans.
bool tracestate_ok(std::string_view value);

// The call's trace from its `traceparent` header (nullopt: none).
CallTrace start_call_trace(std::optional<std::string_view> traceparent, TraceSampler& sampler);

}  // namespace h2mesh::observe
