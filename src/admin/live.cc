#include "admin/live.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpc/status.h"

namespace h2mesh::admin {
namespace {

using Json = nlohmann::ordered_json;

uint64_t minus(uint64_t now, uint64_t before) { return now > before ? now - before : 0; }

// Three decimals are plenty for a person, and keep the JSON short.
double rounded(double v) { return std::round(v * 1000) / 1000; }

const char* status_label(size_t slot) {
  return slot == proxy::kNoStatusSlot ? "NONE" : grpc::status_name(static_cast<int>(slot));
}

// Calls, statuses and durations between two samples of the same counters.
struct Window {
  uint64_t calls = 0;  // started in the window
  std::array<uint64_t, proxy::kStatusSlots> by_status{};  // ended in the window
  uint64_t in_flight = 0;  // now
  Histogram duration = duration_histogram();

  Window() = default;
  Window(const proxy::CallCounters& now, const Histogram& now_duration,
         const proxy::CallCounters* before, const Histogram* before_duration) {
    calls = minus(now.calls_total, before ? before->calls_total : 0);
    for (size_t i = 0; i < proxy::kStatusSlots; ++i)
      by_status[i] = minus(now.by_status[i], before ? before->by_status[i] : 0);
    in_flight = now.in_flight;
    duration = before_duration ? now_duration.since(*before_duration) : now_duration;
  }
  void add(const Window& o) {
    calls += o.calls;
    for (size_t i = 0; i < proxy::kStatusSlots; ++i) by_status[i] += o.by_status[i];
    in_flight += o.in_flight;
    duration.add(o.duration);
  }
  uint64_t ended() const {
    uint64_t n = 0;
    for (uint64_t v : by_status) n += v;
    return n;
  }
  uint64_t errors() const { return ended() - by_status[0]; }
};

Json per_second(uint64_t n, double seconds) {
  return seconds > 0 ? Json(rounded(static_cast<double>(n) / seconds)) : Json(nullptr);
}

Json quantile_ms(const Histogram& h, double q) {
  return h.count() ? Json(rounded(h.quantile(q) / 1000.0)) : Json(nullptr);
}

// The fields a listener and a cluster share: rates, errors by status, percentiles.
void put_window(Json& out, const Window& w, double seconds) {
  out["calls"] = w.calls;
  out["calls_per_second"] = per_second(w.calls, seconds);
  const uint64_t ended = w.ended();
  out["errors"] = w.errors();
  out["error_rate"] = ended ? rounded(static_cast<double>(w.errors()) / static_cast<double>(ended)) : 0.0;
  Json by_status = Json::object();
  for (size_t i = 0; i < proxy::kStatusSlots; ++i)
    if (w.by_status[i]) by_status[status_label(i)] = w.by_status[i];
  out["by_status"] = std::move(by_status);
  out["in_flight"] = w.in_flight;
  out["latency_ms"] = {{"p50", quantile_ms(w.duration, 0.5)},
                       {"p90", quantile_ms(w.duration, 0.9)},
                       {"p99", quantile_ms(w.duration, 0.99)}};
}

struct EndpointRow {
  std::string address;
  const char* state;
  const cluster::HostHealth* health;  // may be null
  Window window;
  uint64_t calls_total;
  uint64_t upstream_connections;
};

const LiveClusterSample kNoCluster{};

Json cluster_json(const std::string& name, const LiveClusterSample& now,
                  const LiveClusterSample* before, double seconds, const HealthView& health,
                  const LiveOptions& options) {
  Json out;
  out["name"] = name;
  put_window(out, Window(now.calls, now.duration, before ? &before->calls : nullptr,
                         before ? &before->duration : nullptr),
             seconds);
  out["calls_total"] = now.calls.calls_total;

  // Every endpoint a worker counted, and those the registry knows that no worker used yet.
  const std::map<std::string, cluster::HostHealth>* hosts = nullptr;
  if (auto h = health.find(name); h != health.end()) hosts = &h->second;
  std::vector<EndpointRow> rows;
  auto add_row = [&](const std::string& address, const LiveEndpointSample& e) {
    const cluster::HostHealth* h = nullptr;
    if (hosts)
      if (auto it = hosts->find(address); it != hosts->end()) h = &it->second;
    const LiveEndpointSample* b = nullptr;
    if (before)
      if (auto it = before->endpoints.find(address); it != before->endpoints.end()) b = &it->second;
    rows.push_back({address, endpoint_state(e.in_snapshot, e.in_backoff, h), h,
                    Window(e.calls, e.duration, b ? &b->calls : nullptr, b ? &b->duration : nullptr),
                    e.calls.calls_total, e.upstream_connections});
  };
  for (const auto& [address, e] : now.endpoints) add_row(address, e);
  if (hosts) {
    const LiveEndpointSample unused;
    for (const auto& [address, h] : *hosts)
      if (!now.endpoints.count(address)) add_row(address, unused);
  }

  uint64_t window_calls = 0;
  std::map<std::string, uint64_t> states;
  for (const auto& r : rows) {
    window_calls += r.window.calls;
    states[r.state]++;
  }
  auto share = [&](uint64_t n) {
    return window_calls ? rounded(static_cast<double>(n) / static_cast<double>(window_calls)) : 0.0;
  };
  out["endpoints_total"] = rows.size();
  out["endpoint_states"] = states;

  // Which endpoints are listed one by one: those not available first (what an operator must
  // see), then the busiest; the rest are summed up. Listed in address order, so that a row
  // stays in its place from one poll to the next.
  std::sort(rows.begin(), rows.end(), [](const EndpointRow& a, const EndpointRow& b) {
    const bool a_down = std::string_view(a.state) != "available";
    const bool b_down = std::string_view(b.state) != "available";
    if (a_down != b_down) return a_down;
    if (a.window.calls != b.window.calls) return a.window.calls > b.window.calls;
    return a.address < b.address;
  });
  const size_t listed = std::min(rows.size(), options.top);
  std::sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(listed),
            [](const EndpointRow& a, const EndpointRow& b) { return a.address < b.address; });
  Json endpoints = Json::array();
  for (size_t i = 0; i < listed; ++i) {
    const EndpointRow& r = rows[i];
    Json e;
    e["address"] = r.address;
    e["state"] = r.state;
    e["healthy"] = r.health ? r.health->healthy : true;
    e["ejected"] = r.health ? r.health->ejected : false;
    e["ejections"] = r.health ? r.health->ejections : 0;
    e["share"] = share(r.window.calls);
    e["calls"] = r.window.calls;
    e["calls_per_second"] = per_second(r.window.calls, seconds);
    e["errors"] = r.window.errors();
    e["p50_ms"] = quantile_ms(r.window.duration, 0.5);
    e["p99_ms"] = quantile_ms(r.window.duration, 0.99);
    e["in_flight"] = r.window.in_flight;
    e["upstream_connections"] = r.upstream_connections;
    e["calls_total"] = r.calls_total;
    endpoints.push_back(std::move(e));
  }
  out["endpoints"] = std::move(endpoints);
  if (listed < rows.size()) {
    Window rest;
    uint64_t connections = 0;
    std::map<std::string, uint64_t> rest_states;
    for (size_t i = listed; i < rows.size(); ++i) {
      rest.add(rows[i].window);
      connections += rows[i].upstream_connections;
      rest_states[rows[i].state]++;
    }
    out["others"] = {{"endpoints", rows.size() - listed},
                     {"share", share(rest.calls)},
                     {"calls", rest.calls},
                     {"calls_per_second", per_second(rest.calls, seconds)},
                     {"errors", rest.errors()},
                     {"in_flight", rest.in_flight},
                     {"upstream_connections", connections},
                     {"states", rest_states}};
  } else {
    out["others"] = nullptr;
  }
  return out;
}

// A listener's view, from its own counters (WorkerStats::listeners: every call that arrived on
// it, routed or not), with the clusters its routes lead to.
Json listener_json(const config::Listener& listener, const LiveSample& now, const LiveSample* before,
                   double seconds) {
  std::vector<std::string> clusters;
  for (const auto& route : listener.routes)
    if (std::find(clusters.begin(), clusters.end(), route.cluster) == clusters.end())
      clusters.push_back(route.cluster);
  Window total;
  if (auto it = now.listeners.find(listener.name); it != now.listeners.end()) {
    const LiveClusterSample* b = nullptr;
    if (before)
      if (auto bt = before->listeners.find(listener.name); bt != before->listeners.end())
        b = &bt->second;
    total = Window(it->second.calls, it->second.duration, b ? &b->calls : nullptr,
                   b ? &b->duration : nullptr);
  }
  // The listener counts a call when it ends: what is in flight is its clusters'.
  for (const auto& name : clusters)
    if (auto c = now.clusters.find(name); c != now.clusters.end()) total.in_flight += c->second.calls.in_flight;
  Json out;
  out["name"] = listener.name;
  out["address"] = listener.address.to_string();
  out["clusters"] = clusters;
  put_window(out, total, seconds);
  return out;
}

}  // namespace

LiveSample make_live_sample(const proxy::WorkerStats& stats, TimePoint at) {
  LiveSample s;
  s.at = at;
  for (const auto& [name, l] : stats.listeners) {
    LiveClusterSample& out = s.listeners[name];
    out.calls.calls_total = l.calls_total;
    out.calls.by_status = l.by_status;
    out.duration = l.duration;
  }
  for (const auto& [name, c] : stats.clusters) {
    LiveClusterSample& out = s.clusters[name];
    out.calls = c.calls;
    out.duration = c.duration;
    for (const auto& [address, e] : c.endpoints) {
      LiveEndpointSample& o = out.endpoints[address];
      o.calls = e.calls;
      o.duration = e.duration;
      o.upstream_connections = e.upstream_connections;
      o.in_backoff = e.in_backoff;
      o.in_snapshot = e.in_snapshot;
    }
  }
  return s;
}

void LiveHistory::push(LiveSample sample) {
  if (!origin_) origin_ = sample.at;
  samples_.push_back(std::move(sample));
  const TimePoint newest = samples_.back().at;
  // Keep one sample at least kMaxWindow old (the start of the longest window), none older.
  while (samples_.size() > 1 && samples_[1].at <= newest - seconds(kMaxWindow)) samples_.pop_front();
  // Past kFineSeconds, one sample per kCoarseStep slot (the slot's first), counted from the
  // first push so that a kept sample stays kept.
  const auto slot = [&](const LiveSample& s) { return (s.at - *origin_) / seconds(kCoarseStep); };
  for (size_t i = 1; i < samples_.size();) {
    if (samples_[i].at >= newest - seconds(kFineSeconds)) break;
    if (slot(samples_[i]) == slot(samples_[i - 1])) {
      samples_.erase(samples_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

const LiveSample* LiveHistory::start_of(int window_seconds) const {
  if (samples_.size() < 2) return nullptr;
  const TimePoint target = samples_.back().at - seconds(window_seconds) + milliseconds(250);
  for (size_t i = samples_.size() - 1; i-- > 0;)
    if (samples_[i].at <= target) return &samples_[i];
  return &samples_.front();
}

LiveOptions parse_live_options(const std::string& query) {
  LiveOptions o;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string::npos) end = query.size();
    const std::string_view pair(query.data() + pos, end - pos);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos) {
      const std::string_view key = pair.substr(0, eq), value = pair.substr(eq + 1);
      long n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec == std::errc() && p == value.data() + value.size()) {
        if (key == "window") o.window = static_cast<int>(std::clamp<long>(n, 1, LiveHistory::kMaxWindow));
        if (key == "top")
          o.top = static_cast<size_t>(std::clamp<long>(n, 1, static_cast<long>(LiveOptions::kMaxTop)));
      }
    }
    pos = end + 1;
  }
  return o;
}

std::string render_live_json(const LiveHistory& history, const HealthView& health,
                             const config::Config& config, const proxy::MeshTable* mesh,
                             const LiveOptions& options, double unix_now) {
  const LiveSample empty;
  const LiveSample& now = history.newest() ? *history.newest() : empty;
  const LiveSample* before = history.start_of(options.window);
  const double seconds =
      before ? std::chrono::duration<double>(now.at - before->at).count() : 0.0;
  auto before_of = [&](const std::string& name) -> const LiveClusterSample* {
    if (!before) return nullptr;
    auto it = before->clusters.find(name);
    return it == before->clusters.end() ? nullptr : &it->second;
  };

  Json out;
  out["time"] = rounded(unix_now);
  // 0: no earlier sample yet (the first look): counts are since the start, rates unknown.
  out["window_seconds"] = rounded(seconds);
  out["window_requested"] = options.window;
  out["top"] = options.top;
  Json listeners = Json::array();
  for (const auto& l : config.listeners)
    listeners.push_back(listener_json(l, now, before, seconds));
  out["listeners"] = std::move(listeners);

  // The config's clusters (each, even before its first call), then the mesh's Services some
  // worker called (sorted by cluster name), with their Service and namespace.
  Json clusters = Json::array();
  for (const auto& c : config.clusters) {
    auto it = now.clusters.find(c.name);
    Json j = cluster_json(c.name, it == now.clusters.end() ? kNoCluster : it->second,
                          before_of(c.name), seconds, health, options);
    j["lb_policy"] = config::lb_policy_name(c.lb_policy);
    clusters.push_back(std::move(j));
  }
  if (mesh) {
    std::map<std::string, const proxy::MeshRoute*> sorted;
    for (const auto& [name, route] : mesh->by_cluster) sorted.emplace(name, route.get());
    for (const auto& [name, route] : sorted) {
      auto it = now.clusters.find(name);
      if (it == now.clusters.end()) continue;
      Json j = cluster_json(name, it->second, before_of(name), seconds, health, options);
      j["service"] = route->service;
      j["namespace"] = route->namespace_;
      j["lb_policy"] = config::lb_policy_name(route->snapshot->settings.lb_policy);
      clusters.push_back(std::move(j));
    }
  }
  out["clusters"] = std::move(clusters);
  return out.dump() + "\n";
}

}  // namespace h2mesh::admin
