#pragma once

// A worker's tracer: turns the ends of its sampled calls and attempts (proxy/call_event.h) into
// spans in its ring to the exporter thread. The proxy hop is one SERVER span per call (child of
// the caller's span) and one CLIENT span per attempt (child of the call's span, parent of the
// backend's spans: its id is the traceparent the upstream request carries).

#include <memory>

#include "common/wall_anchor.h"
#include "observe/span_ring.h"
#include "observe/trace_context.h"
#include "proxy/call_event.h"

namespace h2mesh::observe {

class TraceObserver final : public proxy::CallObserver {
 public:
  // `ring`: this worker's ring of the exporter (shared: the exporter reads it).
  TraceObserver(std::shared_ptr<SpanRing> ring, double sample_ratio)
      : ring_(std::move(ring)), sampler_(sample_ratio) {}

  // The worker's id source and sampling decisions (WorkerContext::trace_sampler points here).
  TraceSampler& sampler() { return sampler_; }

  // Worker thread.
  void on_attempt_end(const proxy::CallEvent& call, const proxy::AttemptEvent& attempt) override;
  void on_call_end(const proxy::CallEvent& call) override;

 private:
  SpanRecord* begin_span();

  std::shared_ptr<SpanRing> ring_;
  TraceSampler sampler_;
  WallAnchor anchor_;
};

// The span of a call / an attempt, as the observer fills it; exposed for tests.
void fill_call_span(const proxy::CallEvent& call, SpanRecord* span,
                    const WallAnchor& anchor = WallAnchor());
void fill_attempt_span(const proxy::CallEvent& call, const proxy::AttemptEvent& attempt,
                       SpanRecord* span, const WallAnchor& anchor = WallAnchor());

}  // namespace h2mesh::observe
