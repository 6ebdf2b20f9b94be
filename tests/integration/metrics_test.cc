// /metrics of a real h2mesh process after calls whose durations the greeter backends set
// (x-delay-ms), read by an independent parser: Debian's python3-prometheus-client, through
// tests/integration/metrics_check.py, which also checks that the text is a valid exposition
// (HELP and TYPE per family, cumulative buckets ending at +Inf = _count). The calls' durations
// are at least their delay and, on loopback, far less than a bucket's width more, so each lands
// in a known bucket.

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "harness.h"

namespace h2mesh_test {
namespace {

using nlohmann::json;

// The value of the sample `name` with exactly `labels`, or -1.
double sample(const json& parsed, const std::string& name, const json& labels) {
  for (const auto& s : parsed["samples"])
    if (s[0] == name && s[1] == labels) return s[2].get<double>();
  return -1;
}

// A histogram series by its labels: le -> cumulative count, with "sum" and "count".
std::map<std::string, double> histogram(const json& parsed, const std::string& name,
                                        const json& labels) {
  std::map<std::string, double> out;
  if (!parsed["histograms"].contains(name)) return out;
  for (const auto& series : parsed["histograms"][name]) {
    if (series["labels"] != labels) continue;
    for (const auto& b : series["buckets"]) out[b[0].get<std::string>()] = b[1].get<double>();
    out["sum"] = series["sum"].get<double>();
    out["count"] = series["count"].get<double>();
  }
  return out;
}

class MetricsTest : public ProxyTest {
 protected:
  // /metrics once `calls` calls have ended on the listener (their end is reported when the
  // proxy's stream closes, a moment after the client has its answer), parsed and checked.
  json scrape_after(int calls) {
    std::string text;
    const std::string want =
        "h2mesh_listener_calls_total{listener=\"grpc\"} " + std::to_string(calls) + "\n";
    EXPECT_TRUE(eventually(
        [&] {
          auto [code, body] = http_get(proxy_.admin_port, "/metrics");
          text = body;
          return code == 200 && body.find(want) != std::string::npos;
        },
        std::chrono::seconds(10)))
        << text;
    auto checked =
        h2mesh::run_command({"/usr/bin/python3", std::string(H2MESH_SOURCE_DIR) +
                                                     "/tests/integration/metrics_check.py"},
                            text);
    EXPECT_TRUE(checked.ok());
    if (!checked.ok()) return json();
    EXPECT_EQ(checked->exit_code, 0) << checked->err;
    if (checked->exit_code != 0) return json();
    return json::parse(checked->out);
  }
};

TEST_F(MetricsTest, KnownDelaysLandInTheirBucketsAndCountsMatchTheCalls) {
  start_backends(2);
  start(simple_config(endpoints(), "round_robin", /*workers=*/2));
  auto first = stub();
  auto second = stub();
  {
    SlowCalls fast(*first, 6, 60);    // (50 ms, 100 ms]
    SlowCalls slow(*second, 4, 300);  // (250 ms, 500 ms]
    ASSERT_TRUE(fast.wait(std::chrono::seconds(20)));
    ASSERT_TRUE(slow.wait(std::chrono::seconds(20)));
    for (size_t i = 0; i < fast.size(); ++i) EXPECT_TRUE(fast.status(i).ok());
    for (size_t i = 0; i < slow.size(); ++i) EXPECT_TRUE(slow.status(i).ok());
  }
  grpc::ClientContext ctx;  // answered NOT_FOUND at once: (0, 50 ms]
  ctx.AddMetadata("x-fail-code", "5");
  helloworld::HelloRequest req;
  helloworld::HelloReply reply;
  EXPECT_EQ(first->SayHello(&ctx, req, &reply).error_code(), grpc::StatusCode::NOT_FOUND);

  const json m = scrape_after(11);
  ASSERT_FALSE(m.is_null());
  for (const char* name :
       {"h2mesh_cluster_call_duration_seconds", "h2mesh_cluster_upstream_duration_seconds",
        "h2mesh_endpoint_call_duration_seconds", "h2mesh_endpoint_upstream_duration_seconds",
        "h2mesh_cluster_call_attempts", "h2mesh_listener_call_duration_seconds"})
    EXPECT_EQ(m["families"][name], "histogram") << name;
  EXPECT_EQ(m["families"]["h2mesh_listener_calls_total"], "counter");

  const json cluster = {{"cluster", "greeter"}};
  const json listener = {{"listener", "grpc"}};
  for (const auto& [name, labels] :
       {std::pair{"h2mesh_cluster_call_duration_seconds", cluster},
        std::pair{"h2mesh_cluster_upstream_duration_seconds", cluster},
        std::pair{"h2mesh_listener_call_duration_seconds", listener}}) {
    auto h = histogram(m, name, labels);
    ASSERT_FALSE(h.empty()) << name;
    EXPECT_EQ(h["0.05"], 1) << name;
    EXPECT_EQ(h["0.1"], 7) << name;
    EXPECT_EQ(h["0.25"], 7) << name;
    EXPECT_EQ(h["0.5"], 11) << name;
    EXPECT_EQ(h["+Inf"], 11) << name;
    EXPECT_EQ(h["count"], 11) << name;
    EXPECT_GE(h["sum"], 6 * 0.06 + 4 * 0.3) << name;
    EXPECT_LT(h["sum"], 6 * 0.1 + 4 * 0.5 + 0.05) << name;
  }
  EXPECT_EQ(sample(m, "h2mesh_cluster_calls_total", cluster), 11);
  EXPECT_EQ(sample(m, "h2mesh_listener_calls_total", listener), 11);
  EXPECT_EQ(sample(m, "h2mesh_listener_calls_by_status_total",
                   {{"listener", "grpc"}, {"grpc_status", "OK"}}),
            10);
  EXPECT_EQ(sample(m, "h2mesh_listener_calls_by_status_total",
                   {{"listener", "grpc"}, {"grpc_status", "NOT_FOUND"}}),
            1);
  auto attempts = histogram(m, "h2mesh_cluster_call_attempts", cluster);
  EXPECT_EQ(attempts["1"], 11);
  EXPECT_EQ(attempts["count"], 11);
  EXPECT_EQ(attempts["sum"], 11);

  // Per endpoint: the calls split over the two, and add up to the cluster's.
  double calls = 0, upto_100ms = 0, attempts_total = 0;
  for (const auto& b : backends_) {
    const json labels = {{"cluster", "greeter"}, {"endpoint", b.address()}};
    auto d = histogram(m, "h2mesh_endpoint_call_duration_seconds", labels);
    auto u = histogram(m, "h2mesh_endpoint_upstream_duration_seconds", labels);
    EXPECT_GT(d["count"], 0) << b.address();
    EXPECT_EQ(d["count"], sample(m, "h2mesh_endpoint_calls_total", labels)) << b.address();
    calls += d["count"];
    upto_100ms += d["0.1"];
    attempts_total += u["count"];
  }
  EXPECT_EQ(calls, 11);
  EXPECT_EQ(upto_100ms, 7);
  EXPECT_EQ(attempts_total, 11);
}

}  // namespace
}  // namespace h2mesh_test
