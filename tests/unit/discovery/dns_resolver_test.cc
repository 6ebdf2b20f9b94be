// The DNS resolver against a real DNS server speaking UDP and TCP on loopback
// (tests/fakes/dns_server.py), whose records each test rewrites while the resolver runs.
//
// Everything runs on one net::EventLoop in the test thread. A Script runs steps in order inside a
// single loop.run(): each step does something, then waits (polled by a 1 ms timer, never by
// sleeping) until its condition holds; a step that takes too long fails the test. Absence (no
// redundant update) is checked after the server has logged enough further queries, not after a
// fixed wait.

#include "discovery/dns_resolver.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cluster/host_set.h"
#include "common/subprocess.h"
#include "config/config.h"
#include "discovery/resolver.h"
#include "fakes/loop_script.h"
#include "net/event_loop.h"

#ifndef H2MESH_DNS_SERVER_PY
#error "H2MESH_DNS_SERVER_PY must name tests/fakes/dns_server.py"
#endif

namespace h2mesh::discovery {
namespace {

using Script = h2mesh_test_fakes::LoopScript;

using config::Millis;
using std::chrono::milliseconds;
using Endpoints = std::vector<cluster::DiscoveredEndpoint>;

constexpr uint16_t kPort = 8080;

long long ms_between(TimePoint a, TimePoint b) {
  return static_cast<long long>(std::chrono::duration_cast<milliseconds>(b - a).count());
}

std::vector<std::string> keys(const Endpoints& eps) {
  std::vector<std::string> out;
  for (const auto& e : eps) out.push_back(e.address.to_string());
  return out;
}


// ---- fixture: a DNS server process and the resolver under test --------------------------------

class DnsResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dns_resolver_test.XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    write_records("{}");
    auto p = Subprocess::spawn({"/usr/bin/python3", H2MESH_DNS_SERVER_PY, "--records",
                                records_path(), "--lifetime", "120"},
                               dir_, "dns");
    ASSERT_TRUE(p) << p.error().message;
    server_ = std::move(*p);
    auto line = server_->wait_for_line(
        Subprocess::Stream::Stdout,
        [](const std::string& l) { return l.rfind("dns listening on 127.0.0.1:", 0) == 0; },
        std::chrono::seconds(10));
    ASSERT_TRUE(line) << "dns server did not start: "
                      << server_->read_all(Subprocess::Stream::Stderr);
    server_port_ = static_cast<uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
  }

  void TearDown() override {
    resolver_.reset();
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string records_path() const { return dir_ + "/records.json"; }

  // Replaces the server's records at once (the server re-reads the file on every query).
  void write_records(const std::string& json) {
    std::string tmp = records_path() + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << json;
    }
    ASSERT_EQ(std::rename(tmp.c_str(), records_path().c_str()), 0);
  }

  config::Cluster cluster(const std::string& name, Millis min_interval, Millis max_interval,
                          Millis timeout = Millis{2000}) const {
    config::Cluster c;
    c.name = "greeter";
    c.discovery.type = config::DiscoveryType::Dns;
    c.discovery.dns.name = name;
    c.discovery.dns.port = kPort;
    c.discovery.dns.resolvers = {config::SocketAddress{"127.0.0.1", server_port_}};
    c.discovery.dns.min_interval = min_interval;
    c.discovery.dns.max_interval = max_interval;
    c.discovery.dns.timeout = timeout;
    return c;
  }

  void start(const config::Cluster& c) {
    resolver_ = make_dns_resolver(loop_, c, [this](Endpoints eps) {
      updates_.push_back(std::move(eps));
      update_times_.push_back(Clock::now());
    });
    started_at_ = Clock::now();
    resolver_->start();
  }

  // Lines of the server's query log containing `needle`, e.g. "greeter.test A ->".
  size_t queries(const std::string& needle) const {
    std::istringstream lines(server_->read_all(Subprocess::Stream::Stdout));
    size_t n = 0;
    for (std::string line; std::getline(lines, line);)
      n += line.rfind("query ", 0) == 0 && line.find(needle) != std::string::npos;
    return n;
  }

  std::string log() const { return server_->read_all(Subprocess::Stream::Stdout); }

  net::EventLoop loop_;  // first: outlives the resolver
  std::string dir_;
  std::unique_ptr<Subprocess> server_;
  uint16_t server_port_ = 0;
  std::unique_ptr<Resolver> resolver_;
  std::vector<Endpoints> updates_;
  std::vector<TimePoint> update_times_;
  TimePoint started_at_{};
};

// ---- scheduling rules -------------------------------------------------------------------------

TEST(DnsSchedule, RefreshFollowsTheSmallestTtlWithinTheBounds) {
  config::DnsDiscovery dns;
  dns.min_interval = Millis{1000};
  dns.max_interval = Millis{30000};
  EXPECT_EQ(dns_refresh_delay(5, dns), std::chrono::seconds(5));
  EXPECT_EQ(dns_refresh_delay(0, dns), milliseconds(1000)) << "TTL 0: no sooner than min_interval";
  EXPECT_EQ(dns_refresh_delay(86400, dns), milliseconds(30000)) << "long TTL: max_interval";
  EXPECT_EQ(dns_refresh_delay(std::nullopt, dns), milliseconds(1000)) << "no records";
}

TEST(DnsSchedule, RetryBackoffDoublesUpToMaxInterval) {
  config::DnsDiscovery dns;
  dns.min_interval = Millis{100};
  dns.max_interval = Millis{1000};
  EXPECT_EQ(dns_retry_delay(1, dns), milliseconds(100));
  EXPECT_EQ(dns_retry_delay(2, dns), milliseconds(200));
  EXPECT_EQ(dns_retry_delay(4, dns), milliseconds(800));
  EXPECT_EQ(dns_retry_delay(5, dns), milliseconds(1000));
  EXPECT_EQ(dns_retry_delay(1000, dns), milliseconds(1000));
}

TEST(DnsSchedule, ZeroMinIntervalNeverSchedulesABusyLoop) {
  config::DnsDiscovery dns;
  dns.min_interval = Millis{0};
  dns.max_interval = Millis{0};
  EXPECT_GT(dns_refresh_delay(0, dns), Duration::zero());
  EXPECT_GT(dns_retry_delay(3, dns), Duration::zero());
}

// ---- against the DNS server ---------------------------------------------------------------------

TEST_F(DnsResolverTest, FirstAnswerReportsEveryARecordAndAaaaRecordSorted) {
  write_records(R"({"greeter.test": {"A": ["10.0.0.2", "10.0.0.1", "10.0.0.2"],
                                     "AAAA": ["fd00::1"], "ttl": 30}})");
  // No trailing dot: the system's search rules apply as they would in production.
  start(cluster("greeter.test", Millis{100}, Millis{5000}));
  EXPECT_FALSE(resolver_->synced());
  Script s(loop_);
  s.step("first update", {}, [&] { return !updates_.empty(); });
  ASSERT_EQ(s.run(), "") << log();
  ASSERT_EQ(updates_.size(), 1u);
  EXPECT_EQ(keys(updates_[0]),
            (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.2:8080", "[fd00::1]:8080"}));
  for (const auto& e : updates_[0]) {
    EXPECT_EQ(e.weight, 1u);
    EXPECT_TRUE(e.ready);
    EXPECT_FALSE(e.terminating);
  }
  EXPECT_TRUE(resolver_->synced());
  EXPECT_EQ(resolver_->last_error(), "");
}

TEST_F(DnsResolverTest, ChangedRecordsArriveWhenTheTtlRunsOut) {
  write_records(R"({"greeter.test": {"A": ["10.0.0.1", "10.0.0.2"], "ttl": 1}})");
  // min_interval 100 ms: re-resolving at 1 s shows the TTL, not min_interval, sets the pace.
  start(cluster("greeter.test.", Millis{100}, Millis{5000}));
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; })
      .step(
          "records change; the update follows",
          [&] { write_records(R"({"greeter.test": {"A": ["10.0.0.3", "10.0.0.1"], "ttl": 1}})"); },
          [&] { return updates_.size() == 2; });
  ASSERT_EQ(s.run(), "") << log();
  EXPECT_EQ(keys(updates_[1]), (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.3:8080"}));
  long long gap = ms_between(update_times_[0], update_times_[1]);
  EXPECT_GE(gap, 950) << "re-resolved before the 1 s TTL ran out";
  EXPECT_LT(gap, 3000);
  EXPECT_EQ(queries("greeter.test A ->"), 2u) << log();
}

TEST_F(DnsResolverTest, UnchangedAnswersGiveNoRedundantUpdate) {
  write_records(R"({"greeter.test": {"A": ["10.0.0.1"], "AAAA": ["fd00::1"], "ttl": 0}})");
  start(cluster("greeter.test.", Millis{50}, Millis{5000}));
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; })
      .step(
          "five more rounds with the same answer",
          [&] {
            // The records file is rewritten with the same records in another order.
            write_records(
                R"({"greeter.test": {"AAAA": ["fd00::1"], "A": ["10.0.0.1"], "ttl": 0}})");
          },
          [&] { return queries("greeter.test AAAA ->") >= 6; });
  ASSERT_EQ(s.run(), "") << log();
  EXPECT_EQ(updates_.size(), 1u);
  EXPECT_TRUE(resolver_->synced());
}

TEST_F(DnsResolverTest, StoppedServerKeepsTheLastSetAndSaysWhy) {
  write_records(R"({"greeter.test": {"A": ["10.0.0.1", "10.0.0.2"], "ttl": 0}})");
  start(cluster("greeter.test.", Millis{100}, Millis{400}, Millis{500}));
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; })
      .step(
          "server stops; the next round fails",
          [&] {
            server_->send_signal(SIGKILL);
            (void)server_->wait(std::chrono::seconds(5));
          },
          [&] { return !resolver_->last_error().empty(); });
  ASSERT_EQ(s.run(), "");
  EXPECT_EQ(updates_.size(), 1u) << "a failure must not change the set";
  EXPECT_TRUE(resolver_->synced());
  EXPECT_NE(resolver_->last_error().find("greeter.test"), std::string::npos)
      << resolver_->last_error();
}

TEST_F(DnsResolverTest, ServfailKeepsTheLastSetAndRecoveryIsQuiet) {
  const std::string good = R"({"greeter.test": {"A": ["10.0.0.1"], "ttl": 0}})";
  write_records(good);
  start(cluster("greeter.test.", Millis{50}, Millis{200}));
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; })
      .step(
          "SERVFAIL", [&] { write_records(R"({"greeter.test": {"rcode": "SERVFAIL"}})"); },
          [&] { return !resolver_->last_error().empty(); })
      .step(
          "server answers again", [&] { write_records(good); },
          [&] { return resolver_->last_error().empty(); });
  ASSERT_EQ(s.run(), "") << log();
  EXPECT_EQ(updates_.size(), 1u) << "neither the failure nor the same answer is an update";
  EXPECT_TRUE(resolver_->synced());
}

TEST_F(DnsResolverTest, FailedAaaaQueryKeepsTheWholeSet) {
  write_records(R"({"greeter.test": {"A": ["10.0.0.1"], "AAAA": ["fd00::1"], "ttl": 0}})");
  start(cluster("greeter.test.", Millis{50}, Millis{200}));
  std::string error;
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; })
      .step(
          "A changes while AAAA fails: the round counts for nothing",
          [&] {
            write_records(R"({"greeter.test": {"A": ["10.0.0.9"], "AAAA": ["fd00::1"],
                                                 "rcode": {"AAAA": "REFUSED"}, "ttl": 0}})");
          },
          [&] {
            error = resolver_->last_error();
            return !error.empty();
          })
      .step(
          "AAAA answers again: the A change applies",
          [&] {
            EXPECT_EQ(updates_.size(), 1u) << "the IPv6 endpoint must not be dropped";
            write_records(
                R"({"greeter.test": {"A": ["10.0.0.9"], "AAAA": ["fd00::1"], "ttl": 0}})");
          },
          [&] { return updates_.size() == 2; });
  ASSERT_EQ(s.run(), "") << log();
  EXPECT_NE(error.find("AAAA"), std::string::npos) << error;
  EXPECT_EQ(error.find(" A: "), std::string::npos) << "the A query succeeded: " << error;
  EXPECT_EQ(error.find("A and AAAA"), std::string::npos) << "the A query succeeded: " << error;
  EXPECT_EQ(keys(updates_[1]), (std::vector<std::string>{"10.0.0.9:8080", "[fd00::1]:8080"}));
}

TEST_F(DnsResolverTest, NxdomainEmptiesTheSetOnceConfirmed) {
  write_records(R"({"gone.test": {"A": ["10.0.0.1"], "ttl": 0}})");
  start(cluster("gone.test.", Millis{50}, Millis{1000}));
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; })
      .step(
          "the name disappears", [&] { write_records("{}"); },
          [&] { return updates_.size() == 2; });
  ASSERT_EQ(s.run(), "") << log();
  EXPECT_TRUE(updates_[1].empty());
  EXPECT_GE(queries("gone.test A -> NXDOMAIN"), 2u) << "emptied on a single answer\n" << log();
  EXPECT_TRUE(resolver_->synced());
  EXPECT_EQ(resolver_->last_error(), "");
}

TEST_F(DnsResolverTest, OneNegativeAnswerIsNotEnoughToEmptyTheSet) {
  const std::string good = R"({"flaky.test": {"A": ["10.0.0.1"], "ttl": 0}})";
  write_records(good);
  // The confirming round comes min_interval (500 ms) after the negative one.
  start(cluster("flaky.test.", Millis{500}, Millis{1000}));
  size_t answered = 0;
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; })
      .step(
          "one round sees NXDOMAIN", [&] { write_records("{}"); },
          [&] { return queries("flaky.test AAAA -> NXDOMAIN") >= 1; })
      .step(
          "the name is back before the confirming round",
          [&] {
            write_records(good);
            answered = queries("flaky.test AAAA -> NOERROR");
          },
          [&] { return queries("flaky.test AAAA -> NOERROR") > answered; });
  ASSERT_EQ(s.run(), "") << log();
  EXPECT_EQ(updates_.size(), 1u) << log();
}

TEST_F(DnsResolverTest, NameWithoutRecordsFromTheStartIsAnEmptySyncedSet) {
  write_records(R"({"empty.test": {}})");
  start(cluster("empty.test.", Millis{1000}, Millis{5000}));
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; });
  ASSERT_EQ(s.run(), "") << log();
  EXPECT_TRUE(updates_[0].empty());
  EXPECT_TRUE(resolver_->synced()) << "NODATA is a complete answer";
  EXPECT_EQ(resolver_->last_error(), "");
  EXPECT_EQ(queries("empty.test A -> NOERROR 0"), 1u) << log();
}

TEST_F(DnsResolverTest, UnknownNameFromTheStartIsAnEmptySyncedSet) {
  start(cluster("nobody.test.", Millis{1000}, Millis{5000}));
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; });
  ASSERT_EQ(s.run(), "") << log();
  EXPECT_TRUE(updates_[0].empty());
  EXPECT_TRUE(resolver_->synced());
}

TEST_F(DnsResolverTest, SilentServerFailsTheRoundAfterTheConfiguredTimeout) {
  write_records(R"({"silent.test": {"drop": true}})");
  start(cluster("silent.test.", Millis{100}, Millis{1000}, Millis{300}));
  TimePoint failed_at{};
  Script s(loop_);
  s.step("the round times out", {}, [&] {
    failed_at = Clock::now();
    return !resolver_->last_error().empty();
  });
  ASSERT_EQ(s.run(), "") << log();
  long long took = ms_between(started_at_, failed_at);
  EXPECT_GE(took, 300) << "gave up before dns.timeout";
  EXPECT_LT(took, 1500) << "dns.timeout not honoured";
  EXPECT_GE(queries("silent.test A -> drop"), 2u) << "the query was not retried within the round";
  EXPECT_FALSE(resolver_->synced());
  EXPECT_TRUE(updates_.empty());
  EXPECT_NE(resolver_->last_error().find("silent.test"), std::string::npos)
      << resolver_->last_error();
}

TEST_F(DnsResolverTest, LargeAnswerIsFetchedOverTcp) {
  std::string a;
  for (int i = 1; i <= 60; ++i) a += (i > 1 ? "," : "") + ("\"10.1.0." + std::to_string(i) + "\"");
  write_records(R"({"big.test": {"A": [)" + a + R"(], "ttl": 30}})");
  start(cluster("big.test.", Millis{1000}, Millis{5000}));
  Script s(loop_);
  s.step("first update", {}, [&] { return updates_.size() == 1; });
  ASSERT_EQ(s.run(), "") << log();
  EXPECT_EQ(updates_[0].size(), 60u);
  EXPECT_EQ(queries("udp big.test A -> truncated"), 1u) << log();
  EXPECT_EQ(queries("tcp big.test A -> NOERROR 60"), 1u) << log();
}

TEST_F(DnsResolverTest, DestroyedWhileQueriesAreInFlight) {
  write_records(R"({"silent.test": {"drop": true}})");
  start(cluster("silent.test.", Millis{100}, Millis{1000}, Millis{5000}));
  TimePoint destroyed_at{};
  Script s(loop_);
  s.step("queries are out", {}, [&] { return queries("silent.test AAAA -> drop") >= 1; })
      .step(
          "destroy the resolver; the loop goes on",
          [&] {
            resolver_.reset();
            destroyed_at = Clock::now();
          },
          [&] { return Clock::now() - destroyed_at > milliseconds(50); });
  ASSERT_EQ(s.run(), "");
  EXPECT_TRUE(updates_.empty());
}

TEST_F(DnsResolverTest, UnusableResolverAddressIsReported) {
  config::Cluster c = cluster("greeter.test.", Millis{100}, Millis{1000});
  c.discovery.dns.resolvers = {config::SocketAddress{"not-an-address", 53}};
  start(c);
  Script s(loop_);
  s.step("error reported", {}, [&] { return !resolver_->last_error().empty(); });
  ASSERT_EQ(s.run(), "");
  EXPECT_NE(resolver_->last_error().find("not-an-address"), std::string::npos)
      << resolver_->last_error();
  EXPECT_FALSE(resolver_->synced());
}

}  // namespace
}  // namespace h2mesh::discovery
