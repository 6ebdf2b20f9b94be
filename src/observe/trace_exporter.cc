#include "observe/trace_exporter.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/log.h"
#include "observe/trace_counters.h"

namespace h2mesh::observe {
namespace {

using std::chrono::milliseconds;

// At most this many tries of one batch: with the backoff below about 1.5s of retrying, while
// the rings keep filling (and dropping) behind it.
constexpr int kMaxTries = 4;
constexpr milliseconds kFirstBackoff{100};
constexpr milliseconds kMaxBackoff{5000};
// How often the thread looks at the rings: a batch leaves once batch_size spans wait, or
// batch_interval after the oldest; between those the rings are polled (no signal from workers:
// that would be a syscall per span).
constexpr milliseconds kPollInterval{20};

bool retryable(int status) { return status == 429 || status == 502 || status == 503 || status == 504; }

}  // namespace

ResourceAttributes resource_attributes(const config::Tracing& tracing) {
  ResourceAttributes r;
  r.values.emplace_back("service.name", tracing.service_name);
  char host[256] = "";
  if (::gethostname(host, sizeof(host) - 1) == 0 && host[0]) r.values.emplace_back("host.name", host);
  if (const char* pod = std::getenv("POD_NAME"); pod && *pod) r.values.emplace_back("k8s.pod.name", pod);
  if (const char* ns = std::getenv("POD_NAMESPACE"); ns && *ns)
    r.values.emplace_back("k8s.namespace.name", ns);
  return r;
}

TraceExporter::TraceExporter(const config::Tracing& tracing, size_t workers)
    : tracing_(tracing),
      resource_(resource_attributes(tracing)),
      client_(OtlpTarget{tracing.otlp_host, tracing.otlp_port, tracing.otlp_path}) {
  for (size_t i = 0; i < workers; ++i) rings_.push_back(std::make_shared<SpanRing>(tracing.queue_size));
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
}

TraceExporter::~TraceExporter() {
  if (thread_.joinable()) {
    if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
    thread_.join();
  }
  uint64_t left = 0;
  for (const auto& ring : rings_) left += ring->size();
  trace_counters().spans_dropped.fetch_add(left, std::memory_order_relaxed);
  for (int fd : wake_)
    if (fd >= 0) ::close(fd);
}

void TraceExporter::start() {
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "h2mesh-trace");
}

void TraceExporter::flush_and_stop() {
  if (!thread_.joinable()) return;
  flush_ = true;
  thread_.join();
}

size_t TraceExporter::pending() const {
  size_t n = 0;
  for (const auto& ring : rings_) n += ring->size();
  return n;
}

bool TraceExporter::sleep_for(milliseconds d) {
  pollfd p{wake_[0], POLLIN, 0};
  return ::poll(&p, wake_[0] >= 0 ? 1 : 0, static_cast<int>(d.count())) <= 0 || !(p.revents & POLLIN);
}

void TraceExporter::run() {
  auto last = std::chrono::steady_clock::now();
  for (;;) {
    if (flush_) {
      while (pending() > 0)
        if (!export_batch(/*retry=*/false)) return;
      return;
    }
    if (!sleep_for(std::min(kPollInterval, milliseconds(tracing_.batch_interval)))) return;
    const size_t waiting = pending();
    const auto now = std::chrono::steady_clock::now();
    if (waiting == 0) {
      last = now;
      continue;
    }
    if (waiting < tracing_.batch_size && now - last < tracing_.batch_interval) continue;
    if (!export_batch(/*retry=*/true)) return;
    last = std::chrono::steady_clock::now();
  }
}

bool TraceExporter::export_batch(bool retry) {
  // Up to batch_size spans, taken from the rings in turn; counts[i] of them from ring i.
  batch_.clear();
  std::vector<size_t> counts(rings_.size(), 0);
  std::vector<size_t> sizes(rings_.size());
  for (size_t i = 0; i < rings_.size(); ++i) sizes[i] = rings_[i]->size();
  bool more = true;
  while (batch_.size() < tracing_.batch_size && more) {
    more = false;
    for (size_t k = 0; k < rings_.size() && batch_.size() < tracing_.batch_size; ++k) {
      size_t i = (next_ring_ + k) % rings_.size();
      if (counts[i] < sizes[i]) {
        batch_.push_back(&rings_[i]->peek(counts[i]++));
        more = true;
      }
    }
  }
  next_ring_ = (next_ring_ + 1) % rings_.size();
  encode_export_request(resource_, H2MESH_VERSION_STRING, batch_, &body_);

  TraceCounters& c = trace_counters();
  milliseconds backoff = kFirstBackoff;
  bool exported = false;
  bool stopped = false;
  for (int attempt = 1; attempt <= kMaxTries; ++attempt) {
    const uint64_t opened = client_.connections();
    OtlpAnswer answer = client_.post(body_, tracing_.export_timeout, wake_[0]);
    c.connections.fetch_add(client_.connections() - opened, std::memory_order_relaxed);
    if (answer.stopped) {
      stopped = true;
      break;
    }
    if (answer.status >= 200 && answer.status < 300) {
      c.requests_ok.fetch_add(1, std::memory_order_relaxed);
      exported = true;
      break;
    }
    bool again;
    if (answer.status == 0) {
      c.requests_error.fetch_add(1, std::memory_order_relaxed);
      again = true;
      LOG_DEBUG("tracing: export to %s failed: %s", tracing_.otlp_endpoint.c_str(), answer.error.c_str());
    } else if (retryable(answer.status)) {
      c.requests_retryable.fetch_add(1, std::memory_order_relaxed);
      again = true;
    } else {
      c.requests_rejected.fetch_add(1, std::memory_order_relaxed);
      LOG_WARN("tracing: %s answered %d to %zu spans; not retried, counted failed",
               tracing_.otlp_endpoint.c_str(), answer.status, batch_.size());
      again = false;
    }
    if (!again || !retry || attempt == kMaxTries) break;
    milliseconds wait = answer.retry_after.count() > 0 ? std::min(answer.retry_after, kMaxBackoff) : backoff;
    if (!sleep_for(wait)) {
      stopped = true;
      break;
    }
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
  if (stopped) return false;  // the batch stays queued: the destructor counts it dropped
  (exported ? c.spans_exported : c.spans_failed).fetch_add(batch_.size(), std::memory_order_relaxed);
  for (size_t i = 0; i < rings_.size(); ++i) rings_[i]->pop(counts[i]);
  return true;
}

}  // namespace h2mesh::observe
