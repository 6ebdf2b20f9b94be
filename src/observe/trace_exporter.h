#pragma once

// The exporter thread: takes the spans the workers left in their rings, in batches, and sends
// them to the OTLP/HTTP receiver. A receiver that is down, slow or refusing only costs spans
// (counted), never the calls: the workers never wait for this thread.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "observe/otlp_encoder.h"
#include "observe/otlp_http.h"
#include "observe/span_ring.h"

namespace h2mesh::observe {

// service.name (the configured one), host.name, and in a pod k8s.pod.name and
// k8s.namespace.name from POD_NAME and POD_NAMESPACE (the injected sidecar sets them from the
// downward API).
ResourceAttributes resource_attributes(const config::Tracing& tracing);

class TraceExporter {
 public:
  // One ring per worker, each of `tracing.queue_size` spans. Made and owned by the main thread.
  TraceExporter(const config::Tracing& tracing, size_t workers);
  // Stops the thread at once (an export under way is broken off); spans still queued are
  // counted dropped.
  ~TraceExporter();
  TraceExporter(const TraceExporter&) = delete;
  TraceExporter& operator=(const TraceExporter&) = delete;

  void start();
  // At shutdown, once the workers are gone: sends what is still queued (one try per batch,
  // each bounded by export_timeout), then stops.
  void flush_and_stop();

  std::shared_ptr<SpanRing> ring(size_t worker) const { return rings_[worker]; }
  const config::Tracing& settings() const { return tracing_; }

 private:
  void run();
  size_t pending() const;
  // Sends up to batch_size spans; with `retry`, 429/502/503/504 and connection errors are tried
  // again (bounded) with backoff. Returns false when stopped.
  bool export_batch(bool retry);
  // Sleeps up to `d`; false when woken to stop.
  bool sleep_for(std::chrono::milliseconds d);

  const config::Tracing tracing_;
  const ResourceAttributes resource_;
  OtlpClient client_;  // exporter thread only: its connection is kept from batch to batch
  std::vector<std::shared_ptr<SpanRing>> rings_;
  size_t next_ring_ = 0;  // the ring a batch starts with: fairness between workers
  std::string body_;      // reused between batches
  std::vector<const SpanRecord*> batch_;
  int wake_[2] = {-1, -1};  // a pipe: a byte in it stops the thread
  std::atomic<bool> flush_{false};
  std::thread thread_;
};

}  // namespace h2mesh::observe
