#include "admin/live.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/top.h"

namespace h2mesh::admin {
namespace {

using Json = nlohmann::json;

const TimePoint kStart{std::chrono::seconds(1000)};

config::Config two_clusters() {
  config::Config c;
  config::Listener l;
  l.name = "grpc";
  l.address = {"127.0.0.1", 50051};
  config::Route r;
  r.cluster = "greeter";
  l.routes.push_back(r);
  c.listeners.push_back(l);
  config::Cluster g;
  g.name = "greeter";
  c.clusters.push_back(g);
  config::Cluster other;
  other.name = "idle";
  c.clusters.push_back(other);
  return c;
}

// Adds `calls` finished calls (status OK unless given) of `micros` each to an endpoint, as
// MetricsObserver and the pool count them.
void add_calls(proxy::WorkerStats& s, const std::string& endpoint, uint64_t calls, uint64_t micros,
               int status = 0) {
  proxy::ClusterStats& c = s.clusters["greeter"];
  proxy::EndpointStats& e = c.endpoints[endpoint];
  for (uint64_t i = 0; i < calls; ++i) {
    c.calls.calls_total++;
    c.calls.by_status[static_cast<size_t>(status)]++;
    c.duration.record(micros);
    e.calls.calls_total++;
    e.calls.by_status[static_cast<size_t>(status)]++;
    e.duration.record(micros);
  }
}

Json render(const LiveHistory& h, const LiveOptions& options = {},
            const HealthView& health = {}) {
  return Json::parse(render_live_json(h, health, two_clusters(), nullptr, options, 1.5e9));
}

const Json& endpoint(const Json& cluster, const std::string& address) {
  for (const Json& e : cluster["endpoints"])
    if (e["address"] == address) return e;
  static const Json none;
  ADD_FAILURE() << "no endpoint " << address << " in " << cluster.dump();
  return none;
}

TEST(LiveJson, SharesAndRatesCoverOnlyTheWindow) {
  proxy::WorkerStats s;
  // Before the window: everything went to a (the L4 picture).
  add_calls(s, "a", 1000, 200);
  add_calls(s, "b", 0, 200);
  LiveHistory h;
  h.push(make_live_sample(s, kStart));
  // In the window, 10 s later: 100 calls spread 50/30/20.
  add_calls(s, "a", 50, 200);
  add_calls(s, "b", 30, 200);
  add_calls(s, "c", 20, 200);
  h.push(make_live_sample(s, kStart + std::chrono::seconds(10)));

  const Json live = render(h);
  EXPECT_DOUBLE_EQ(live["window_seconds"].get<double>(), 10.0);
  const Json& g = live["clusters"][0];
  EXPECT_EQ(g["name"], "greeter");
  EXPECT_EQ(g["calls"], 100);
  EXPECT_DOUBLE_EQ(g["calls_per_second"].get<double>(), 10.0);
  EXPECT_EQ(g["calls_total"], 1100);
  EXPECT_DOUBLE_EQ(endpoint(g, "a")["share"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(endpoint(g, "b")["share"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(endpoint(g, "c")["share"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(endpoint(g, "c")["calls_per_second"].get<double>(), 2.0);
  // A configured cluster nobody called is listed, empty.
  EXPECT_EQ(live["clusters"][1]["name"], "idle");
  EXPECT_EQ(live["clusters"][1]["calls"], 0);
  EXPECT_TRUE(live["clusters"][1]["latency_ms"]["p99"].is_null());
}

TEST(LiveJson, ListenerShowsItsOwnCallsInTheWindowAndItsClustersInFlight) {
  proxy::WorkerStats s;
  proxy::ListenerStats& l = s.listeners["grpc"];
  for (int i = 0; i < 400; ++i) {  // before the window: 400 OK calls of 1 ms
    l.calls_total++;
    l.by_status[0]++;
    l.duration.record(1000);
  }
  LiveHistory h;
  h.push(make_live_sample(s, kStart));
  // In the window (5 s): 40 calls, 10 of them UNIMPLEMENTED (no route: no cluster saw them).
  for (int i = 0; i < 40; ++i) {
    l.calls_total++;
    l.by_status[i < 10 ? 12 : 0]++;
    l.duration.record(i < 10 ? 100 : 20'000);
  }
  s.clusters["greeter"].calls.in_flight = 3;
  h.push(make_live_sample(s, kStart + std::chrono::seconds(5)));

  const Json live = render(h);
  ASSERT_EQ(live["listeners"].size(), 1u);
  const Json& g = live["listeners"][0];
  EXPECT_EQ(g["name"], "grpc");
  EXPECT_EQ(g["clusters"], Json::array({"greeter"}));
  EXPECT_EQ(g["calls"], 40);
  EXPECT_DOUBLE_EQ(g["calls_per_second"].get<double>(), 8.0);
  EXPECT_EQ(g["errors"], 10);
  EXPECT_EQ(g["in_flight"], 3);
  // p99 of the window: the 20 ms calls, not the 1 ms ones before it.
  EXPECT_GT(g["latency_ms"]["p99"].get<double>(), 15.0);
  EXPECT_LE(g["latency_ms"]["p99"].get<double>(), 25.0);
}

TEST(LiveJson, FirstSampleCountsSinceStartWithoutRates) {
  proxy::WorkerStats s;
  add_calls(s, "a", 3, 100);
  add_calls(s, "b", 1, 100);
  LiveHistory h;
  h.push(make_live_sample(s, kStart));
  const Json live = render(h);
  EXPECT_EQ(live["window_seconds"], 0.0);
  const Json& g = live["clusters"][0];
  EXPECT_TRUE(g["calls_per_second"].is_null());
  EXPECT_DOUBLE_EQ(endpoint(g, "a")["share"].get<double>(), 0.75);
}

TEST(LiveJson, PercentilesAndErrorsComeFromTheWindowOnly) {
  proxy::WorkerStats s;
  add_calls(s, "a", 1000, 50'000);  // 50 ms, before the window
  LiveHistory h;
  h.push(make_live_sample(s, kStart));
  add_calls(s, "a", 90, 1'000);                            // 1 ms
  add_calls(s, "a", 10, 100'000, /*UNAVAILABLE*/ 14);      // 100 ms, failed
  h.push(make_live_sample(s, kStart + std::chrono::seconds(10)));

  const Json live = render(h);
  const Json& g = live["clusters"][0];
  const double p50 = g["latency_ms"]["p50"].get<double>();
  const double p99 = g["latency_ms"]["p99"].get<double>();
  // Buckets are ~25% wide: the median is in the 1 ms bucket, p99 in the 100 ms one; the 50 ms
  // calls before the window show nowhere.
  EXPECT_GT(p50, 0.7);
  EXPECT_LE(p50, 1.0);
  EXPECT_GT(p99, 80.0);
  EXPECT_LE(p99, 100.0);
  EXPECT_EQ(g["errors"], 10);
  EXPECT_DOUBLE_EQ(g["error_rate"].get<double>(), 0.1);
  EXPECT_EQ(g["by_status"]["OK"], 90);
  EXPECT_EQ(g["by_status"]["UNAVAILABLE"], 10);
  EXPECT_EQ(endpoint(g, "a")["errors"], 10);
}

TEST(LiveJson, ManyEndpointsListTheTopAndSumTheOthers) {
  proxy::WorkerStats s;
  LiveHistory h;
  h.push(make_live_sample(s, kStart));
  // 300 endpoints: e000 has 300 calls, e001 299, ... e299 1; e150 is unhealthy.
  char name[8];
  for (int i = 0; i < 300; ++i) {
    snprintf(name, sizeof name, "e%03d", i);
    add_calls(s, name, static_cast<uint64_t>(300 - i), 100);
  }
  h.push(make_live_sample(s, kStart + std::chrono::seconds(10)));
  HealthView health;
  health["greeter"]["e150"].healthy = false;
  LiveOptions options;
  options.top = 5;

  const std::string text = render_live_json(h, health, two_clusters(), nullptr, options, 0);
  const Json live = Json::parse(text);
  const Json& g = live["clusters"][0];
  ASSERT_EQ(g["endpoints"].size(), 5u);
  // The unhealthy one is always listed, then the busiest, in address order.
  std::vector<std::string> listed;
  for (const Json& e : g["endpoints"]) listed.push_back(e["address"]);
  EXPECT_EQ(listed, (std::vector<std::string>{"e000", "e001", "e002", "e003", "e150"}));
  EXPECT_EQ(endpoint(g, "e150")["state"], "unhealthy");
  EXPECT_EQ(g["endpoints_total"], 300);
  EXPECT_EQ(g["endpoint_states"]["unhealthy"], 1);
  const Json& others = g["others"];
  EXPECT_EQ(others["endpoints"], 295);
  // All calls: 300*301/2 = 45150; listed: 300+299+298+297+150 = 1344.
  EXPECT_EQ(others["calls"], 45150 - 1344);
  double shares = others["share"].get<double>();
  for (const Json& e : g["endpoints"]) shares += e["share"].get<double>();
  EXPECT_NEAR(shares, 1.0, 0.01);
  // Small: the JSON does not grow with the endpoints left out.
  EXPECT_LT(text.size(), 6000u);
}

TEST(LiveHistory, WindowStartsFromTheSampleThatOldAndThinsOldSamples) {
  LiveHistory h;
  for (int i = 0; i <= 120; ++i) h.push(LiveSample{kStart + std::chrono::seconds(i), {}, {}});
  const TimePoint newest = h.newest()->at;
  EXPECT_EQ(newest, kStart + std::chrono::seconds(120));
  for (int window : {1, 5, 10, 30, 60}) {
    const LiveSample* start = h.start_of(window);
    ASSERT_NE(start, nullptr);
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(newest - start->at).count();
    // One sample a second for the last 10 s, then one per 5 s: the start is no later than asked
    // and at most one step earlier.
    EXPECT_GE(age, window);
    EXPECT_LT(age, window + (window > LiveHistory::kFineSeconds ? LiveHistory::kCoarseStep : 1));
  }
  // 10 fine samples + ~10 coarse + the newest: bounded whatever the watching time.
  EXPECT_LE(h.size(), 23u);
  EXPECT_GE(h.size(), 20u);
  // Nothing older than the longest window's start is kept.
  const LiveSample* oldest = h.start_of(1000);
  EXPECT_GE(oldest->at, newest - std::chrono::seconds(LiveHistory::kMaxWindow + LiveHistory::kCoarseStep));
}

TEST(LiveHistory, ShortHistoryGivesTheOldestAndOneSampleNone) {
  LiveHistory h;
  h.push(LiveSample{kStart, {}, {}});
  EXPECT_EQ(h.start_of(10), nullptr);
  h.push(LiveSample{kStart + std::chrono::seconds(3), {}, {}});
  ASSERT_NE(h.start_of(10), nullptr);
  EXPECT_EQ(h.start_of(10)->at, kStart);
}

TEST(LiveOptions, QueryValuesAreClampedAndBadOnesIgnored) {
  EXPECT_EQ(parse_live_options("").window, 10);
  EXPECT_EQ(parse_live_options("window=30").window, 30);
  EXPECT_EQ(parse_live_options("window=0").window, 1);
  EXPECT_EQ(parse_live_options("window=9999&top=3").window, LiveHistory::kMaxWindow);
  EXPECT_EQ(parse_live_options("window=9999&top=3").top, 3u);
  EXPECT_EQ(parse_live_options("top=100000").top, LiveOptions::kMaxTop);
  EXPECT_EQ(parse_live_options("window=abc&x=1&window").window, 10);
  EXPECT_EQ(parse_live_options("window=5x").window, 10);
}

TEST(TopText, ShowsEveryListedEndpointWithItsShareAndState) {
  proxy::WorkerStats s;
  LiveHistory h;
  h.push(make_live_sample(s, kStart));
  add_calls(s, "10.0.0.1:50051", 75, 300);
  add_calls(s, "10.0.0.2:50051", 25, 300, 14);
  h.push(make_live_sample(s, kStart + std::chrono::seconds(10)));
  HealthView health;
  health["greeter"]["10.0.0.2:50051"].ejected = true;
  const std::string json = render_live_json(h, health, two_clusters(), nullptr, {}, 0);
  std::string error;
  auto text = server::format_top(json, "127.0.0.1:9901", server::TopStyle{}, &error);
  ASSERT_TRUE(text) << error;
  EXPECT_NE(text->find("CLUSTER greeter"), std::string::npos) << *text;
  EXPECT_NE(text->find("10.0.0.1:50051 available    ###############.....  75.0%"),
            std::string::npos)
      << *text;
  EXPECT_NE(text->find("10.0.0.2:50051 ejected      #####...............  25.0%"),
            std::string::npos)
      << *text;
  EXPECT_NE(text->find("UNAVAILABLE=25"), std::string::npos) << *text;
  EXPECT_FALSE(server::format_top("<html>", "x", {}, &error));
}

}  // namespace
}  // namespace h2mesh::admin
