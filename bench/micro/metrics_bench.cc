// What the latency histograms cost: one record on the data path (MetricsObserver, per call and
// per attempt), and on a scrape the worker's copy of its stats, the admin thread's sum over the
// workers and the /metrics text, for one cluster of 10 to 1,000 endpoints that all served calls.

#include <benchmark/benchmark.h>

#include <string>

#include "admin/render.h"
#include "common/histogram.h"
#include "proxy/call_event.h"
#include "proxy/stats.h"

namespace h2mesh {
namespace {

// One worker's stats: a listener and a cluster of `endpoints` endpoints, each with calls spread
// over a few decades of durations.
proxy::WorkerStats worker_stats(size_t endpoints) {
  proxy::WorkerStats s;
  proxy::ListenerStats& l = s.listeners["grpc"];
  proxy::ClusterStats& c = s.clusters["greeter"];
  for (size_t i = 0; i < endpoints; ++i) {
    proxy::EndpointStats& e =
        c.endpoints["10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":50051"];
    for (uint64_t us = 50 + i; us < 5000000; us = us * 3 / 2) {
      e.calls.calls_total++;
      e.calls.by_status[0]++;
      e.duration.record(us);
      e.upstream_duration.record(us);
      c.duration.record(us);
      c.upstream_duration.record(us);
      c.attempts[0]++;
      l.duration.record(us);
    }
  }
  return s;
}

void BM_HistogramRecord(benchmark::State& state) {
  Histogram h = duration_histogram();
  uint64_t us = 1;
  for (auto _ : state) {
    h.record(us);
    us = us * 7 % 999983;  // spread over the decades
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_HistogramRecord);

// The metrics observer's work at the end of a call with one attempt.
void BM_MetricsObserverCall(benchmark::State& state) {
  proxy::ListenerStats listener;
  proxy::ClusterStats cluster;
  proxy::EndpointStats endpoint;
  proxy::CallEvent call;
  call.listener_stats = &listener;
  call.cluster_stats = &cluster;
  call.endpoint_stats = &endpoint;
  call.grpc_status = 0;
  call.attempts = 1;
  proxy::AttemptEvent attempt;
  attempt.endpoint_stats = &endpoint;
  proxy::MetricsObserver observer;
  int64_t us = 300;
  for (auto _ : state) {
    call.duration = std::chrono::microseconds(us);
    attempt.end = attempt.start + std::chrono::microseconds(us);
    cluster.calls.in_flight++;  // what the stream counts at the call's start
    observer.on_attempt_end(call, attempt);
    observer.on_call_end(call);
    us = us * 7 % 99991 + 100;
  }
  benchmark::DoNotOptimize(listener.calls_total);
}
BENCHMARK(BM_MetricsObserverCall);

// The worker's share of a scrape: copying its stats for the admin thread.
void BM_WorkerStatsCopy(benchmark::State& state) {
  const proxy::WorkerStats s = worker_stats(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    proxy::WorkerStats copy = s;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_WorkerStatsCopy)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

// The admin thread's: two workers' copies added up, then rendered.
void BM_ScrapeTwoWorkers(benchmark::State& state) {
  const proxy::WorkerStats s = worker_stats(static_cast<size_t>(state.range(0)));
  const config::Config config;
  size_t bytes = 0;
  for (auto _ : state) {
    proxy::WorkerStats total;
    total.add(s);
    total.add(s);
    const std::string text = admin::render_metrics(total, admin::HealthView{}, config);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_ScrapeTwoWorkers)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

// The /metrics text alone.
void BM_RenderMetrics(benchmark::State& state) {
  const proxy::WorkerStats s = worker_stats(static_cast<size_t>(state.range(0)));
  const config::Config config;
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string text = admin::render_metrics(s, admin::HealthView{}, config);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderMetrics)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace h2mesh
