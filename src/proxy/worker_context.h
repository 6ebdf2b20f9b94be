#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/log.h"
#include "common/random.h"
#include "config/config.h"
#include "net/event_loop.h"
#include "net/transport.h"
#include "observe/trace_context.h"
#include "proxy/call_event.h"
#include "proxy/rate_limit.h"
#include "proxy/stats.h"

namespace h2mesh::proxy {

class ClusterManager;

// What every data-path object of one worker may reach: the worker's loop, its random source,
// its counters and its clusters. One per worker thread; never touched by another thread.
struct WorkerContext {
  WorkerContext(net::EventLoop& l, uint64_t seed, const config::Buffers& b)
      : loop(l), random(seed), buffers(b) {}

  net::EventLoop& loop;
  Random random;
  config::Buffers buffers;  // the current config's; a reload replaces them
  // How long the stats of an endpoint that left stay after its last call and connection ended.
  Duration stats_retention = config::Admin{}.endpoint_stats_retention;
  WorkerStats stats;
  // Who hears of each call's and attempt's end (proxy/call_event.h): the metrics first, then
  // the access log and the tracer when they are configured.
  MetricsObserver metrics;
  CallObservers call_observers{&metrics};
  // Set while `tracing:` is configured (owned by the worker's tracer): calls then start or
  // continue a trace and their upstream requests carry h2mesh's span as parent. Null: off.
  observe::TraceSampler* trace_sampler = nullptr;
  RateLimits rate_limits;  // this worker's shares of the configured rate limits
  ClusterManager* clusters = nullptr;  // owned by the worker
  uint32_t worker_count = 1;           // per-worker shares of circuit-breaker limits
  // How upstream connections are opened: TCP; tests connect to in-memory backends. Not owned.
  net::Connector* connector = &net::tcp_connector();
  // Lines about malformed client requests: a client can send them at will.
  log::Limiter bad_request_log{seconds(1)};
  // Worker thread: a host failed outlier_detection.consecutive_failures calls in a row. The
  // worker forwards it to the main thread, which decides on ejection for all workers.
  std::function<void(const std::string& cluster, const std::string& host)> report_outlier;
};

}  // namespace h2mesh::proxy
