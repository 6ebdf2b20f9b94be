#include "proxy/call_event.h"

#include "grpc/status.h"
#include "proxy/stats.h"

namespace h2mesh::proxy {
namespace {

uint64_t micros(Duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us > 0 ? static_cast<uint64_t>(us) : 0;
}

size_t status_slot(int64_t status) {
  return status >= 0 && status <= grpc::kMaxStatusCode ? static_cast<size_t>(status) : kNoStatusSlot;
}

// Every duration histogram is a duration_histogram(): a value's bucket is found once and
// recorded into each histogram it counts in.
const Histogram kDurations = duration_histogram();

}  // namespace

void MetricsObserver::on_attempt_end(const CallEvent&, const AttemptEvent& attempt) {
  const uint64_t us = micros(attempt.end - attempt.start);
  const size_t bucket = kDurations.bucket_of(us);
  if (attempt.endpoint_stats) attempt.endpoint_stats->upstream_duration.record_in(bucket, us);
  if (attempt.cluster_stats) attempt.cluster_stats->upstream_duration.record_in(bucket, us);
}

void MetricsObserver::on_call_end(const CallEvent& call) {
  const size_t slot = status_slot(call.grpc_status);
  const uint64_t us = micros(call.duration);
  const size_t bucket = kDurations.bucket_of(us);
  if (ListenerStats* l = call.listener_stats) {
    l->calls_total++;
    l->by_status[slot]++;
    l->duration.record_in(bucket, us);
  }
  if (ClusterStats* c = call.cluster_stats) {
    c->calls.in_flight--;
    c->calls.by_status[slot]++;
    c->duration.record_in(bucket, us);
    if (call.attempts > 0) {
      const size_t i = std::min<size_t>(static_cast<size_t>(call.attempts), c->attempts.size()) - 1;
      c->attempts[i]++;
    }
  }
  if (EndpointStats* e = call.endpoint_stats) {
    e->calls.by_status[slot]++;
    e->duration.record_in(bucket, us);
  }
}

}  // namespace h2mesh::proxy
