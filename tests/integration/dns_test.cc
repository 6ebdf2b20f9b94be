// DNS discovery against a real DNS server (tests/fakes/dns_server.py) whose records change, with
// real greeter backends on several loopback addresses sharing one port.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>

#include "harness.h"

namespace h2mesh_test {
namespace {

class DnsTest : public ProxyTest {
 protected:
  void write_records(const std::vector<std::string>& ips) {
    std::string json = "{\"greeter.test\": {\"A\": [";
    for (size_t i = 0; i < ips.size(); ++i) json += (i ? ",\"" : "\"") + ips[i] + "\"";
    json += "], \"ttl\": 1}}";
    std::string tmp = records_ + ".new";
    std::ofstream(tmp) << json;
    ASSERT_EQ(std::rename(tmp.c_str(), records_.c_str()), 0);
  }
  void start_dns() {
    auto p = Subprocess::spawn({"/usr/bin/python3", std::string(H2MESH_SOURCE_DIR) + "/tests/fakes/dns_server.py",
                                "--records", records_, "--lifetime", "300"},
                               dir_, "dns");
    ASSERT_TRUE(p.ok());
    dns_ = std::move(*p);
    auto line = dns_->wait_for_line(
        Subprocess::Stream::Stdout,
        [](const std::string& l) { return l.find("dns listening on") != std::string::npos; },
        kStartTimeout);
    ASSERT_TRUE(line.has_value()) << dns_->read_all(Subprocess::Stream::Stderr);
    dns_port_ = line->substr(line->rfind(':') + 1);
  }
  std::string config(uint16_t port) {
    std::string y = simple_config({"127.0.0.1:1"}, "round_robin");
    return std::regex_replace(
        y, std::regex("    endpoints:\n      - \"127.0.0.1:1\"\n"),
        "    discovery:\n      dns:\n        name: greeter.test\n        port: " +
            std::to_string(port) + "\n        resolvers: [\"127.0.0.1:" + dns_port_ +
            "\"]\n        min_interval: 100ms\n        max_interval: 1s\n");
  }
  std::string records_ = dir_ + "/records.json";
  std::unique_ptr<Subprocess> dns_;
  std::string dns_port_;
};

TEST_F(DnsTest, EndpointSetFollowsTheRecordsWithoutFailingCalls) {
  backends_.push_back(start_backend(dir_, "a"));
  uint16_t port = backends_[0].port;
  backends_.push_back(start_backend(dir_, "b", port, {"--address", "127.0.0.2"}));
  backends_.push_back(start_backend(dir_, "c", port, {"--address", "127.0.0.3"}));
  write_records({"127.0.0.1", "127.0.0.2"});
  start_dns();
  start(config(port));
  ASSERT_TRUE(eventually([&] { return http_get(proxy_.admin_port, "/ready").first == 200; },
                         std::chrono::seconds(10)));
  SteadyLoad load(proxy_.target(), std::chrono::milliseconds(2000));
  ASSERT_TRUE(eventually(
      [&] {
        std::set<std::string> seen;
        for (const auto& r : load.results()) seen.insert(r.backend);
        return seen.count("a") && seen.count("b");
      },
      std::chrono::seconds(10)));

  // The Service scales: c comes, a goes.
  write_records({"127.0.0.2", "127.0.0.3"});
  auto changed = std::chrono::steady_clock::now();
  size_t mark = load.count();
  ASSERT_TRUE(eventually(
      [&] {
        auto r = load.results();
        return r.size() > mark && r.back().backend == "c";
      },
      std::chrono::seconds(10)));
  auto took = std::chrono::steady_clock::now() - changed;
  std::printf("DNS change reached the data path in %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  size_t after = load.count();
  ASSERT_TRUE(load.wait_more(100, std::chrono::seconds(10)));
  load.stop();
  auto r = load.results();
  size_t failed = 0;
  for (const auto& x : r) failed += !x.ok;
  EXPECT_EQ(failed, 0u) << "calls keep succeeding across the change";
  for (size_t i = after; i < r.size(); ++i) EXPECT_NE(r[i].backend, "a");
  auto [code, clusters] = http_get(proxy_.admin_port, "/clusters");
  EXPECT_NE(clusters.find("\"address\":\"127.0.0.3:" + std::to_string(port) + "\",\"state\":\"available\""),
            std::string::npos)
      << clusters;
}

TEST_F(DnsTest, NotReadyUntilTheFirstAnswer) {
  backends_.push_back(start_backend(dir_, "a"));
  write_records({"127.0.0.1"});
  dns_port_ = "1";  // nothing answers there
  start(config(backends_[0].port));
  auto [code, body] = http_get(proxy_.admin_port, "/ready");
  EXPECT_EQ(code, 503);
  EXPECT_NE(body.find("discovery"), std::string::npos) << body;
}

}  // namespace
}  // namespace h2mesh_test
