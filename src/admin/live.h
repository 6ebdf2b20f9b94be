#pragma once

// The live view of GET /live.json (the dashboard page and `h2mesh top` read it): rates, error
// rates and latency percentiles over a recent window, and each endpoint's share of its
// cluster's calls in that window.
//
// Rates need history, and the workers' counters only ever grow: the admin thread keeps a short
// ring of collected samples (LiveHistory) and answers with the difference between the newest
// and the one taken `window` seconds earlier. A sample keeps only what the view needs (one
// histogram per cluster and per endpoint, no TLS or mesh counters), and samples older than
// kFineSeconds are thinned to one per kCoarseStep, so watching a cluster of 300 busy endpoints
// holds about 20 samples x 300 x 0.6 KB ≈ 4 MB, released when nobody watches (admin/dashboard.h).

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "admin/render.h"
#include "common/histogram.h"
#include "common/time.h"
#include "config/config.h"
#include "proxy/mesh_table.h"
#include "proxy/stats.h"

namespace h2mesh::admin {

struct LiveEndpointSample {
  proxy::CallCounters calls;
  Histogram duration = duration_histogram();  // µs, calls whose last attempt went here
  uint64_t upstream_connections = 0;
  bool in_backoff = false;
  bool in_snapshot = true;
};

struct LiveClusterSample {
  proxy::CallCounters calls;
  Histogram duration = duration_histogram();  // µs, every call of the cluster
  std::map<std::string, LiveEndpointSample> endpoints;  // by address
};

// What one collection of the workers' counters (Server::collect) left for the live view.
struct LiveSample {
  TimePoint at{};  // when the collection finished (the admin loop's clock)
  std::map<std::string, LiveClusterSample> clusters;
  std::map<std::string, LiveClusterSample> listeners;  // by name; no endpoints
};

// Admin thread. Keeps the stats the view needs, dropping the rest of `stats`.
LiveSample make_live_sample(const proxy::WorkerStats& stats, TimePoint at);

// The recent samples, oldest first: one per collection for the last kFineSeconds, then one per
// kCoarseStep up to kMaxWindow (so a window up to kMaxWindow seconds always has a start).
// Admin thread only.
class LiveHistory {
 public:
  static constexpr int kMaxWindow = 60;  // seconds; larger ?window= values are cut to it
  static constexpr int kFineSeconds = 10;
  static constexpr int kCoarseStep = 5;

  void push(LiveSample sample);
  void clear() { samples_.clear(); }
  bool empty() const { return samples_.empty(); }
  size_t size() const { return samples_.size(); }
  // Null when empty.
  const LiveSample* newest() const { return samples_.empty() ? nullptr : &samples_.back(); }
  // The sample a `window`-second view starts from: the newest one at least `window` seconds
  // (less a quarter second of collection jitter) older than the newest; when the history is
  // shorter, the oldest. Null when there is no sample but the newest.
  const LiveSample* start_of(int window_seconds) const;

 private:
  std::deque<LiveSample> samples_;
  std::optional<TimePoint> origin_;  // the first push: coarse slots are counted from it
};

struct LiveOptions {
  static constexpr int kDefaultWindow = 10;
  static constexpr size_t kDefaultTop = 20;
  static constexpr size_t kMaxTop = 500;
  int window = kDefaultWindow;  // seconds, 1..LiveHistory::kMaxWindow
  // Endpoints listed one by one per cluster; the rest are summed up in the cluster's "others".
  size_t top = kDefaultTop;
};

// Reads `window=N` and `top=N` from a query string ("window=10&top=50"); values out of range
// are clamped, unknown keys and malformed values are ignored (the defaults stay).
LiveOptions parse_live_options(const std::string& query);

// The JSON of GET /live.json (schema: docs/observability.md#dashboard). `health`: the
// registry's view (as /clusters shows it); `mesh`: mesh mode's table, else null. `unix_now`:
// wall-clock seconds, shown as "time".
std::string render_live_json(const LiveHistory& history, const HealthView& health,
                             const config::Config& config, const proxy::MeshTable* mesh,
                             const LiveOptions& options, double unix_now);

}  // namespace h2mesh::admin
