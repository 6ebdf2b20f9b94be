// ClusterManager::pick on a worker: the policy's choice, per-endpoint circuit breakers, retry
// avoidance. No connection is opened: pools connect only when a call is attached.

#include "proxy/cluster_manager.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "cluster/host_set.h"
#include "config/config.h"
#include "fakes/loop_script.h"
#include "net/event_loop.h"
#include "proxy/conn_pool.h"
#include "proxy/tried_endpoints.h"
#include "proxy/worker_context.h"

namespace h2mesh::proxy {
namespace {

class PickTest : public ::testing::TestWithParam<config::LbPolicy> {
 protected:
  void build(size_t hosts, uint32_t max_per_endpoint) {
    config::Cluster c;
    c.name = "greeter";
    c.lb_policy = GetParam();
    c.circuit_breakers.max_calls_per_endpoint = max_per_endpoint;
    for (size_t i = 0; i < hosts; ++i)
      c.endpoints.push_back(
          config::Endpoint{config::SocketAddress{"10.0.0." + std::to_string(i + 1), 50051}, 1});
    manager_.update(cluster::make_static_snapshot(c, 1));
    state_ = manager_.find("greeter");
    ASSERT_NE(state_, nullptr);
  }
  // `calls` calls in flight on every endpoint but `except`.
  void load_all_but(size_t except, uint32_t calls) {
    for (size_t i = 0; i < state_->pools.size(); ++i)
      if (i != except)
        for (uint32_t c = 0; c < calls; ++c) state_->pools[i]->call_started();
  }

  net::EventLoop loop_;
  WorkerContext ctx_{loop_, 42, config::Buffers{}};
  ClusterManager manager_{ctx_};
  ClusterManager::ClusterState* state_ = nullptr;
};

// Every endpoint but one is at max_calls_per_endpoint: every call goes to the free one, never
// refused while it can take calls (random draws alone miss it about 1 time in e).
TEST_P(PickTest, TheOnlyEndpointWithRoomTakesEveryCall) {
  build(64, 1);
  load_all_but(37, 1);
  for (int i = 0; i < 2000; ++i) {
    Error why;
    ConnPool* pool = manager_.pick(*state_, &why);
    ASSERT_NE(pool, nullptr) << "pick " << i << ": " << why.message;
    EXPECT_EQ(pool, state_->pools[37]);
  }
}

TEST_P(PickTest, EveryEndpointFullIsOverloaded) {
  build(8, 2);
  load_all_but(8, 2);
  Error why;
  EXPECT_EQ(manager_.pick(*state_, &why), nullptr);
  EXPECT_EQ(why.code, ErrorCode::Overloaded);
  EXPECT_NE(why.message.find("max_calls_per_endpoint"), std::string::npos) << why.message;
}

// A retry avoids the endpoint of the failed attempt while another can take the call, and still
// gets that endpoint when it is the only one left.
TEST_P(PickTest, RetryAvoidsThePreviousEndpointUnlessItIsTheOnlyOne) {
  build(4, 1);
  TriedEndpoints avoid;
  avoid.add(state_->pools[2]->host().key);
  std::map<ConnPool*, int> got;
  for (int i = 0; i < 400; ++i) {
    Error why;
    ConnPool* pool = manager_.pick(*state_, &why, &avoid);
    ASSERT_NE(pool, nullptr) << why.message;
    got[pool]++;
  }
  EXPECT_EQ(got.count(state_->pools[2]), 0u);
  load_all_but(2, 1);
  Error why;
  EXPECT_EQ(manager_.pick(*state_, &why, &avoid), state_->pools[2]);
}

// Two attempts failed on two of three endpoints: the third attempt goes to the one left, every
// time (avoiding only the last one tried would send half of them back to the first).
TEST_P(PickTest, ThirdAttemptGoesToTheOneEndpointNotTriedYet) {
  build(3, 0);
  TriedEndpoints tried;
  tried.add(state_->pools[0]->host().key);
  tried.add(state_->pools[2]->host().key);
  for (int i = 0; i < 500; ++i) {
    Error why;
    ASSERT_EQ(manager_.pick(*state_, &why, &tried), state_->pools[1]) << "pick " << i;
  }
}

// Among many endpoints a retry never goes back to any endpoint the call tried.
TEST_P(PickTest, RetryAvoidsEveryTriedEndpointAmongMany) {
  build(16, 0);
  TriedEndpoints tried;
  for (size_t i : {1u, 4u, 5u, 9u, 10u, 11u, 15u}) tried.add(state_->pools[i]->host().key);
  std::map<ConnPool*, int> got;
  for (int i = 0; i < 2000; ++i) {
    Error why;
    ConnPool* pool = manager_.pick(*state_, &why, &tried);
    ASSERT_NE(pool, nullptr) << why.message;
    EXPECT_FALSE(tried.contains(pool->host().key)) << pool->host().key;
    got[pool]++;
  }
  EXPECT_EQ(got.size(), 9u) << "every endpoint not tried gets retries";
}

// Every endpoint tried already: a retry still gets one (avoiding is a preference, not a refusal).
TEST_P(PickTest, EveryEndpointTriedStillGivesOne) {
  build(3, 0);
  TriedEndpoints tried;
  for (size_t i = 0; i < 3; ++i) tried.add(state_->pools[i]->host().key);
  Error why;
  EXPECT_NE(manager_.pick(*state_, &why, &tried), nullptr) << why.message;
}

TEST(TriedEndpoints, RemembersUpToTheAttemptLimitWithoutDuplicates) {
  TriedEndpoints tried;
  EXPECT_TRUE(tried.empty());
  EXPECT_FALSE(tried.contains("10.0.0.1:50051"));
  tried.add("10.0.0.1:50051");
  tried.add("10.0.0.1:50051");
  EXPECT_EQ(tried.size(), 1u);
  EXPECT_TRUE(tried.contains("10.0.0.1:50051"));
  EXPECT_FALSE(tried.contains("10.0.0.1:50052"));
  EXPECT_FALSE(tried.contains("[fd00::1]:50051"));
  for (size_t i = 2; i <= 2 * TriedEndpoints::kCapacity; ++i)
    tried.add("10.0.0." + std::to_string(i) + ":50051");
  EXPECT_EQ(tried.size(), TriedEndpoints::kCapacity);  // bounded: max_attempts - 1 are needed
  EXPECT_GE(TriedEndpoints::kCapacity, config::RetryPolicy::kMaxAttemptsLimit - 1);
  EXPECT_TRUE(tried.contains("10.0.0.10:50051"));
}

INSTANTIATE_TEST_SUITE_P(Policies, PickTest,
                         ::testing::Values(config::LbPolicy::RoundRobin, config::LbPolicy::Random,
                                           config::LbPolicy::LeastRequest),
                         [](const auto& info) {
                           switch (info.param) {
                             case config::LbPolicy::RoundRobin: return std::string("round_robin");
                             case config::LbPolicy::Random: return std::string("random");
                             default: return std::string("least_request");
                           }
                         });

config::Cluster cluster_with(size_t hosts) {
  config::Cluster c;
  c.name = "greeter";
  for (size_t i = 0; i < hosts; ++i)
    c.endpoints.push_back(
        config::Endpoint{config::SocketAddress{"10.0.0." + std::to_string(i + 1), 50051}, 1});
  return c;
}

// Endpoint churn on a worker: the stats entry of an endpoint that left stays while a call on it
// drains and for the retention after, then goes; its counts stay in the cluster's totals.
TEST(ClusterManagerChurn, DepartedEndpointStatsGoAfterDrainAndRetention) {
  net::EventLoop loop;
  WorkerContext ctx{loop, 7, config::Buffers{}};
  ctx.stats_retention = std::chrono::milliseconds(30);
  ClusterManager manager{ctx};
  manager.update(cluster::make_static_snapshot(cluster_with(3), 1));
  ClusterStats& stats = ctx.stats.clusters["greeter"];
  ASSERT_EQ(stats.endpoints.size(), 3u);
  ConnPool* leaving = manager.find("greeter")->pools[2];
  leaving->call_started();  // a call in flight on 10.0.0.3 across its removal
  manager.update(cluster::make_static_snapshot(cluster_with(2), 2));
  const TimePoint removed = Clock::now();

  TimePoint ended{}, gone{};
  h2mesh_test_fakes::LoopScript script(loop);
  script
      .wait("three retentions pass while the call still runs",
            [&] { return Clock::now() - removed >= 3 * ctx.stats_retention; })
      .step("the call ends",
            [&] {
              EXPECT_EQ(stats.endpoints.count("10.0.0.3:50051"), 1u) << "kept while draining";
              ended = Clock::now();
              leaving->call_ended();
            },
            [&] {
              gone = Clock::now();
              return stats.endpoints.count("10.0.0.3:50051") == 0;
            });
  ASSERT_EQ(script.run(), "");
  EXPECT_GE(gone - ended, ctx.stats_retention) << "a scrape must still see the final counts";
  EXPECT_EQ(stats.endpoints.size(), 2u) << "the endpoints that stay keep their entries";
  EXPECT_EQ(endpoint_totals(stats).calls.calls_total, 1u);
  EXPECT_EQ(stats.departed.calls.calls_total, 1u);
}

// A reload changes buffers: connections a pool opens from then on use the new windows.
TEST(ClusterManagerReload, PoolsOpenNewConnectionsWithTheCurrentWindows) {
  net::EventLoop loop;
  WorkerContext ctx{loop, 7, config::Buffers{}};
  ClusterManager manager{ctx};
  manager.update(cluster::make_static_snapshot(cluster_with(1), 1));
  ConnPool* pool = manager.find("greeter")->pools[0];
  EXPECT_EQ(pool->session_options().stream_window, config::Buffers{}.stream_window_bytes);
  ctx.buffers.stream_window_bytes = 256 << 10;
  ctx.buffers.connection_window_bytes = 4 << 20;
  EXPECT_EQ(pool->session_options().stream_window, 256u << 10);
  EXPECT_EQ(pool->session_options().connection_window, 4u << 20);
}

}  // namespace
}  // namespace h2mesh::proxy
