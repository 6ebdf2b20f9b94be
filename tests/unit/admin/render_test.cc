// /metrics: the latency histograms (bucket placement at every shown bound, cumulative buckets,
// exact sums in seconds, counts), attempts per call, the listeners' call stats, and the counter
// tables of proxy/stats.h each giving one family with its help, type and value.

#include "admin/render.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

namespace h2mesh::admin {
namespace {

// "name{labels} value" lines of the exposition, by everything before the value.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

std::string render(const proxy::WorkerStats& s) {
  return render_metrics(s, HealthView{}, config::Config{});
}

// Buckets shown, in seconds, and the same bounds in microseconds.
const std::vector<std::pair<std::string, uint64_t>> kShown = {
    {"0.0001", 100},  {"0.00025", 250}, {"0.0005", 500},  {"0.001", 1000},  {"0.0025", 2500},
    {"0.005", 5000},  {"0.01", 10000},  {"0.025", 25000}, {"0.05", 50000},  {"0.1", 100000},
    {"0.25", 250000}, {"0.5", 500000},  {"1", 1000000},   {"2.5", 2500000}, {"5", 5000000},
    {"10", 10000000}, {"25", 25000000}, {"50", 50000000}};

TEST(RenderMetrics, ADurationOnAShownBoundCountsInThatBucketAndOneMicrosecondMoreInTheNext) {
  for (size_t i = 0; i < kShown.size(); ++i) {
    proxy::WorkerStats s;
    proxy::ClusterStats& c = s.clusters["greeter"];
    c.duration.record(kShown[i].second);
    c.duration.record(kShown[i].second + 1);
    const auto m = samples(render(s));
    const std::string prefix =
        "h2mesh_cluster_call_duration_seconds_bucket{cluster=\"greeter\",le=\"";
    const std::string at = m.at(prefix + kShown[i].first + "\"}");
    EXPECT_EQ(at, "1") << "le=" << kShown[i].first;
    if (i > 0) {
      EXPECT_EQ(m.at(prefix + kShown[i - 1].first + "\"}"), "0") << "le=" << kShown[i - 1].first;
    }
    if (i + 1 < kShown.size()) {
      EXPECT_EQ(m.at(prefix + kShown[i + 1].first + "\"}"), "2") << "le=" << kShown[i + 1].first;
    }
    EXPECT_EQ(m.at(prefix + "+Inf\"}"), "2");
  }
}

TEST(RenderMetrics, DurationHistogramIsCumulativeWithExactSumInSecondsAndItsCount) {
  proxy::WorkerStats s;
  proxy::ClusterStats& c = s.clusters["greeter"];
  for (uint64_t us : {40, 120, 3000, 3000, 30000, 700000, 90000000}) c.duration.record(us);
  const std::string text = render(s);
  const auto m = samples(text);
  const std::string b = "h2mesh_cluster_call_duration_seconds_bucket{cluster=\"greeter\",le=\"";
  const std::map<std::string, std::string> expected = {
      {"0.0001", "1"}, {"0.00025", "2"}, {"0.0025", "2"}, {"0.005", "4"}, {"0.025", "4"},
      {"0.05", "5"},   {"0.5", "5"},     {"1", "6"},      {"50", "6"},    {"+Inf", "7"}};
  for (const auto& [le, n] : expected) EXPECT_EQ(m.at(b + le + "\"}"), n) << "le=" << le;
  // 40 + 120 + 3000 + 3000 + 30000 + 700000 + 90000000 us
  EXPECT_EQ(m.at("h2mesh_cluster_call_duration_seconds_sum{cluster=\"greeter\"}"), "90.73616");
  EXPECT_EQ(m.at("h2mesh_cluster_call_duration_seconds_count{cluster=\"greeter\"}"), "7");
  EXPECT_NE(text.find("# TYPE h2mesh_cluster_call_duration_seconds histogram\n"),
            std::string::npos);
  EXPECT_NE(text.find("# HELP h2mesh_cluster_call_duration_seconds "), std::string::npos);
}

TEST(RenderMetrics, AClusterWithoutCallsShowsZeroHistograms) {
  proxy::WorkerStats s;
  s.clusters["idle"];
  const auto m = samples(render(s));
  EXPECT_EQ(m.at("h2mesh_cluster_upstream_duration_seconds_bucket{cluster=\"idle\",le=\"+Inf\"}"),
            "0");
  EXPECT_EQ(m.at("h2mesh_cluster_upstream_duration_seconds_sum{cluster=\"idle\"}"), "0");
  EXPECT_EQ(m.at("h2mesh_cluster_call_attempts_count{cluster=\"idle\"}"), "0");
}

TEST(RenderMetrics, AttemptsPerCallAreCumulativeUpToSevenWithAnExactSum) {
  proxy::WorkerStats s;
  proxy::ClusterStats& c = s.clusters["greeter"];
  c.attempts[0] = 5;  // 5 calls made one attempt
  c.attempts[1] = 2;  // 2 calls made two
  c.attempts[9] = 1;  // one made ten (max_attempts' limit)
  const auto m = samples(render(s));
  const std::string b = "h2mesh_cluster_call_attempts_bucket{cluster=\"greeter\",le=\"";
  EXPECT_EQ(m.at(b + "1\"}"), "5");
  EXPECT_EQ(m.at(b + "2\"}"), "7");
  EXPECT_EQ(m.at(b + "7\"}"), "7");
  EXPECT_EQ(m.at(b + "+Inf\"}"), "8");
  EXPECT_EQ(m.count(b + "8\"}"), 0u);
  EXPECT_EQ(m.at("h2mesh_cluster_call_attempts_sum{cluster=\"greeter\"}"), "19");
  EXPECT_EQ(m.at("h2mesh_cluster_call_attempts_count{cluster=\"greeter\"}"), "8");
}

TEST(RenderMetrics, EndpointHistogramsAppearOnceTheEndpointRecordedSomething) {
  proxy::WorkerStats s;
  proxy::ClusterStats& c = s.clusters["greeter"];
  c.endpoints["10.0.0.1:50051"].upstream_duration.record(2000);
  c.endpoints["10.0.0.1:50051"].duration.record(2500);
  c.endpoints["10.0.0.2:50051"];  // in the snapshot, never called
  const auto m = samples(render(s));
  const std::string one = "cluster=\"greeter\",endpoint=\"10.0.0.1:50051\"";
  const std::string two = "cluster=\"greeter\",endpoint=\"10.0.0.2:50051\"";
  EXPECT_EQ(m.at("h2mesh_endpoint_upstream_duration_seconds_bucket{" + one + ",le=\"0.001\"}"),
            "0");
  EXPECT_EQ(m.at("h2mesh_endpoint_upstream_duration_seconds_bucket{" + one + ",le=\"0.0025\"}"),
            "1");
  EXPECT_EQ(m.at("h2mesh_endpoint_upstream_duration_seconds_sum{" + one + "}"), "0.002");
  EXPECT_EQ(m.at("h2mesh_endpoint_call_duration_seconds_count{" + one + "}"), "1");
  EXPECT_EQ(m.count("h2mesh_endpoint_call_duration_seconds_count{" + two + "}"), 0u);
  EXPECT_EQ(m.count("h2mesh_endpoint_upstream_duration_seconds_count{" + two + "}"), 0u);
  EXPECT_EQ(m.at("h2mesh_endpoint_calls_total{" + two + "}"), "0") << "its counters still show";
}

TEST(RenderMetrics, ListenersShowCallsByStatusAndDuration) {
  proxy::WorkerStats s;
  proxy::ListenerStats& l = s.listeners["grpc"];
  l.calls_total = 3;
  l.by_status[0] = 1;
  l.by_status[12] = 1;
  l.by_status[proxy::kNoStatusSlot] = 1;
  for (uint64_t us : {900, 900, 1500}) l.duration.record(us);
  const auto m = samples(render(s));
  EXPECT_EQ(m.at("h2mesh_listener_calls_total{listener=\"grpc\"}"), "3");
  EXPECT_EQ(m.at("h2mesh_listener_calls_by_status_total{listener=\"grpc\",grpc_status=\"OK\"}"),
            "1");
  EXPECT_EQ(
      m.at(
          "h2mesh_listener_calls_by_status_total{listener=\"grpc\",grpc_status=\"UNIMPLEMENTED\"}"),
      "1");
  EXPECT_EQ(m.at("h2mesh_listener_calls_by_status_total{listener=\"grpc\",grpc_status=\"NONE\"}"),
            "1");
  EXPECT_EQ(
      m.count(
          "h2mesh_listener_calls_by_status_total{listener=\"grpc\",grpc_status=\"UNAVAILABLE\"}"),
      0u);
  EXPECT_EQ(m.at("h2mesh_listener_call_duration_seconds_bucket{listener=\"grpc\",le=\"0.001\"}"),
            "2");
  EXPECT_EQ(m.at("h2mesh_listener_call_duration_seconds_sum{listener=\"grpc\"}"), "0.0033");
}

// Every row of the counter tables is a family with HELP and TYPE (rows that share a name are
// one family, its samples told apart by the row's label), showing the member's value.
TEST(RenderMetrics, EveryTableCounterShowsItsMembersValue) {
  proxy::WorkerStats s;
  proxy::ClusterStats& c = s.clusters["greeter"];
  proxy::EndpointStats& e = c.endpoints["10.0.0.1:50051"];
  uint64_t next = 1000;
  std::map<std::string, uint64_t> expected;  // sample (name and labels) -> value
  auto key = [](const char* name, std::string labels, const char* extra) {
    if (*extra) labels += (labels.empty() ? "" : ",") + std::string(extra);
    return std::string(name) + (labels.empty() ? "" : "{" + labels + "}");
  };
#define H2MESH_EXPECT_ROW(member, name, label, type, help) \
  target.member = ++next;                                  \
  expected[key(name, labels, label)] = next;
  {
    auto& target = s;
    const std::string labels;
    H2MESH_WORKER_COUNTERS(H2MESH_EXPECT_ROW)
  }
  {
    auto& target = c;
    const std::string labels = "cluster=\"greeter\"";
    H2MESH_CLUSTER_COUNTERS(H2MESH_EXPECT_ROW)
  }
  {
    auto& target = s.mesh;
    const std::string labels;
    H2MESH_MESH_COUNTERS(H2MESH_EXPECT_ROW)
  }
#undef H2MESH_EXPECT_ROW
#define H2MESH_EXPECT_ENDPOINT_ROW(member, name, cluster_name, type, help, cluster_help) \
  e.member = ++next;                                                                     \
  expected[key(name, "cluster=\"greeter\",endpoint=\"10.0.0.1:50051\"", "")] = next;     \
  if (cluster_name) expected[key(cluster_name, "cluster=\"greeter\"", "")] = next;
  H2MESH_ENDPOINT_COUNTERS(H2MESH_EXPECT_ENDPOINT_ROW)
#undef H2MESH_EXPECT_ENDPOINT_ROW

  proxy::MeshTable mesh;
  const std::string text = render_metrics(s, HealthView{}, config::Config{}, &mesh);
  const auto m = samples(text);
  for (const auto& [sample, value] : expected) {
    ASSERT_EQ(m.count(sample), 1u) << sample;
    EXPECT_EQ(m.at(sample), std::to_string(value)) << sample;
    const std::string family = sample.substr(0, sample.find('{'));
    EXPECT_NE(text.find("# HELP " + family + " "), std::string::npos) << family;
    EXPECT_NE(text.find("# TYPE " + family + " "), std::string::npos) << family;
  }
  // One HELP per family, however many rows it has.
  EXPECT_EQ(text.find("# HELP h2mesh_cluster_retries_total"),
            text.rfind("# HELP h2mesh_cluster_retries_total"));
  EXPECT_NE(text.find("# TYPE h2mesh_downstream_connections_active gauge\n"), std::string::npos);
}

// What /clusters and the dashboard call an endpoint. A killed pod fails its health check and is
// ejected as well: it reads "unhealthy", the verdict that will bring it back.
TEST(EndpointState, HealthCheckVerdictWinsOverEjectionWhichWinsOverBackoff) {
  cluster::HostHealth h;
  EXPECT_STREQ(endpoint_state(true, false, nullptr), "available");
  EXPECT_STREQ(endpoint_state(true, true, nullptr), "reconnecting");
  EXPECT_STREQ(endpoint_state(true, false, &h), "available");
  h.ejected = true;
  EXPECT_STREQ(endpoint_state(true, true, &h), "ejected");
  h.healthy = false;
  EXPECT_STREQ(endpoint_state(true, true, &h), "unhealthy");
  h.ejected = false;
  EXPECT_STREQ(endpoint_state(true, false, &h), "unhealthy");
  EXPECT_STREQ(endpoint_state(false, false, &h), "removed");
}

}  // namespace
}  // namespace h2mesh::admin
