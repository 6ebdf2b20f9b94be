// The live view end to end: a real h2mesh, 4 greeter backends and one client connection making
// calls. /live.json agrees with /clusters, `h2mesh top --once` lists the endpoints, and the page
// does too in headless Chromium (tests/integration/dashboard_browser.py), where a killed
// backend turns unhealthy.

#include <nlohmann/json.hpp>

#include <filesystem>

#include "harness.h"

namespace h2mesh_test {
namespace {

using Json = nlohmann::json;

constexpr double kShareTolerance = 0.1;

class DashboardTest : public ProxyTest {
 protected:
  void SetUp() override {
    start_backends(4);
    // Health checks every 100 ms, one failure enough: a killed backend is marked at once.
    // Outlier detection stays on (the default): the killed backend is ejected too, and its
    // failed health check is what the page must show.
    start(simple_config(endpoints(), "round_robin", 2,
                        "    health_check:\n      interval: 100ms\n      interval_jitter: 0s\n"
                        "      timeout: 100ms\n      healthy_threshold: 1\n"
                        "      unhealthy_threshold: 1\n"));
    load_ = std::make_unique<SteadyLoad>(proxy_.target(), std::chrono::milliseconds(2000));
    ASSERT_TRUE(load_->wait_more(400, std::chrono::seconds(30)));
  }
  void TearDown() override { load_.reset(); }

  // Each endpoint's share of the calls /clusters counted since the start.
  std::map<std::string, double> clusters_shares(const Json& clusters) {
    std::map<std::string, double> shares;
    double total = 0;
    for (const Json& e : clusters["clusters"][0]["endpoints"]) total += e["calls_total"].get<double>();
    for (const Json& e : clusters["clusters"][0]["endpoints"])
      shares[e["address"]] = e["calls_total"].get<double>() / total;
    return shares;
  }

  std::unique_ptr<SteadyLoad> load_;
};

TEST_F(DashboardTest, LiveJsonSharesMatchClustersAndTopListsEveryEndpoint) {
  // The first look starts the sampling; a later one has a window.
  Json live;
  ASSERT_TRUE(eventually(
      [&] {
        auto [status, body] = http_get(proxy_.admin_port, "/live.json?window=5");
        if (status != 200) return false;
        live = Json::parse(body);
        return live["window_seconds"].get<double>() >= 1;
      },
      std::chrono::seconds(10)));
  auto [status, clusters_body] = http_get(proxy_.admin_port, "/clusters");
  ASSERT_EQ(status, 200);
  const auto expected = clusters_shares(Json::parse(clusters_body));

  const Json& cluster = live["clusters"][0];
  EXPECT_EQ(cluster["name"], "greeter");
  EXPECT_GT(cluster["calls_per_second"].get<double>(), 0);
  EXPECT_FALSE(cluster["latency_ms"]["p99"].is_null());
  ASSERT_EQ(cluster["endpoints"].size(), 4u) << live.dump();
  for (const Json& e : cluster["endpoints"]) {
    ASSERT_TRUE(expected.count(e["address"])) << e.dump();
    EXPECT_NEAR(e["share"].get<double>(), expected.at(e["address"]), kShareTolerance) << live.dump();
    EXPECT_EQ(e["state"], "available");
  }
  EXPECT_EQ(live["listeners"][0]["name"], "grpc");

  auto top = h2mesh::run_command({bin_dir() + "/h2mesh", "top", "--once", "--admin",
                                  "127.0.0.1:" + std::to_string(proxy_.admin_port)});
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->exit_code, 0) << top->err;
  EXPECT_NE(top->out.find("CLUSTER greeter"), std::string::npos) << top->out;
  for (const auto& b : backends_)
    EXPECT_NE(top->out.find(b.address() + " available"), std::string::npos) << top->out;

  // The page itself comes from the binary: one self-contained document.
  auto [page_status, page] = http_get(proxy_.admin_port, "/");
  EXPECT_EQ(page_status, 200);
  EXPECT_NE(page.find("<script>"), std::string::npos);
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.find("href=\"http"), std::string::npos);
}

TEST_F(DashboardTest, PageInChromiumShowsTheSharesAndAKilledBackendTurnsUnhealthy) {
  const std::string chromium = h2mesh::find_executable("chromium");
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup.sh --tests)";
  const std::string shot = bin_dir() + "/../dashboard.png";
  const Backend& victim = backends_[2];
  auto run = h2mesh::run_command(
      {"/usr/bin/python3", std::string(H2MESH_SOURCE_DIR) + "/tests/integration/dashboard_browser.py",
       "--chromium", chromium, "--admin-port", std::to_string(proxy_.admin_port), "--endpoints",
       "4", "--screenshot", shot, "--kill-pid", std::to_string(victim.process->pid()),
       "--kill-endpoint", victim.address(), "--unhealthy-within", "2"});
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(run->exit_code, 0) << run->err;
  const Json report = Json::parse(run->out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << run->out << run->err;
  ASSERT_FALSE(report.contains("error")) << report.dump();

  // What the page showed agrees with /clusters, read right after.
  const auto expected = clusters_shares(report["clusters"]);
  ASSERT_EQ(report["rows"].size(), 4u) << report.dump();
  for (const Json& row : report["rows"]) {
    ASSERT_TRUE(expected.count(row["address"])) << row.dump();
    EXPECT_NEAR(row["share"].get<double>(), expected.at(row["address"]), kShareTolerance)
        << report.dump();
    EXPECT_EQ(row["state"], "available");
  }
  EXPECT_TRUE(std::filesystem::file_size(shot) > 10000) << shot;

  // The page read the killed backend as unhealthy within 2 s (the driver stops looking then).
  EXPECT_EQ(report["killed_state"], "unhealthy") << report.dump();
}

}  // namespace
}  // namespace h2mesh_test
