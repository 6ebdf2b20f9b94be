// Mesh mode on a worker: a Service's cluster exists only once it is called, follows new tables,
// and is dropped after mesh.cluster_idle_timeout without calls. Simulated time; no connection
// is opened (pools connect only when a call is attached).

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "cluster/host_set.h"
#include "config/config.h"
#include "net/event_loop.h"
#include "net/simulated_clock.h"
#include "proxy/cluster_manager.h"
#include "proxy/mesh_table.h"
#include "proxy/worker_context.h"

namespace h2mesh::proxy {
namespace {

using std::chrono::milliseconds;

MeshRoutePtr route(const std::string& service, size_t hosts, uint64_t version) {
  auto snapshot = std::make_shared<cluster::ClusterSnapshot>();
  snapshot->settings.name = service + ".demo:50051";
  snapshot->version = version;
  for (size_t i = 0; i < hosts; ++i) {
    cluster::Host h;
    h.address = config::SocketAddress{"10.1.0." + std::to_string(i + 1), 8080};
    h.key = h.address.to_string();
    snapshot->hosts.push_back(h);
  }
  auto r = std::make_shared<MeshRoute>();
  r->cluster = snapshot->settings.name;
  r->service = service;
  r->namespace_ = "demo";
  r->snapshot = std::move(snapshot);
  static const config::MeshServiceSettings kDefaults;
  r->settings = &kDefaults;
  return r;
}

class MeshClusterTest : public ::testing::Test {
 protected:
  MeshClusterTest() {
    auto cfg = std::make_shared<config::Config>();
    cfg->mesh.enabled = true;
    cfg->mesh.cluster_idle_timeout = milliseconds(10000);
    config_ = cfg;
  }
  MeshTablePtr table(std::initializer_list<MeshRoutePtr> routes) {
    auto t = std::make_shared<MeshTable>();
    t->config = config_;
    for (const auto& r : routes) {
      t->by_cluster.emplace(r->cluster, r);
      auto key = net::AddressKey::from(
          config::SocketAddress{"10.96.0." + std::to_string(t->by_address.size() + 1), 50051});
      t->by_address.emplace(*key, r);
    }
    return t;
  }

  net::SimulatedClock clock_;
  net::EventLoop loop_{clock_};
  WorkerContext ctx_{loop_, 42, config::Buffers{}};
  ClusterManager manager_{ctx_};
  std::shared_ptr<const config::Config> config_;
};

TEST_F(MeshClusterTest, OnlyCalledServicesGetPoolsAndState) {
  EXPECT_EQ(manager_.find("greeter.demo:50051"), nullptr) << "no table yet";
  manager_.set_mesh(table({route("greeter", 4, 1), route("billing", 2, 1), route("users", 3, 1)}));
  EXPECT_EQ(manager_.mesh_cluster_count(), 0u) << "a table alone makes nothing";
  EXPECT_TRUE(ctx_.stats.clusters.empty());
  auto* greeter = manager_.find("greeter.demo:50051");
  ASSERT_NE(greeter, nullptr);
  EXPECT_EQ(greeter->pools.size(), 4u);
  EXPECT_EQ(manager_.mesh_cluster_count(), 1u);
  EXPECT_EQ(ctx_.stats.clusters.size(), 1u);
  EXPECT_EQ(manager_.find("greeter.demo:50051"), greeter) << "made once";
  EXPECT_EQ(manager_.find("nothere.demo:50051"), nullptr);
}

TEST_F(MeshClusterTest, ANewTableUpdatesTheServicesInUse) {
  manager_.set_mesh(table({route("greeter", 4, 1)}));
  auto* greeter = manager_.find("greeter.demo:50051");
  ASSERT_NE(greeter, nullptr);
  manager_.set_mesh(table({route("greeter", 8, 2)}));  // scaled up
  EXPECT_EQ(greeter->pools.size(), 8u);
  manager_.set_mesh(table({route("greeter", 2, 3)}));  // scaled down: 6 pools drain
  EXPECT_EQ(greeter->pools.size(), 2u);
}

TEST_F(MeshClusterTest, IdleServicesAreDroppedAndComeBackOnTheNextCall) {
  manager_.set_mesh(table({route("greeter", 2, 1), route("billing", 2, 1)}));
  auto* greeter = manager_.find("greeter.demo:50051");
  auto* billing = manager_.find("billing.demo:50051");
  ASSERT_NE(greeter, nullptr);
  ASSERT_NE(billing, nullptr);
  billing->stats->calls.in_flight = 1;  // a long call keeps billing
  billing->stats->calls.calls_total = 1;
  clock_.advance(milliseconds(9000));
  EXPECT_EQ(manager_.mesh_cluster_count(), 2u) << "not idle for a whole timeout yet";
  greeter->stats->calls.calls_total++;  // a call: greeter's idle time starts again
  clock_.advance(milliseconds(9000));
  EXPECT_EQ(manager_.mesh_cluster_count(), 2u);
  clock_.advance(milliseconds(12000));
  EXPECT_EQ(manager_.mesh_cluster_count(), 1u) << "greeter went, billing has a call in flight";
  EXPECT_EQ(ctx_.stats.clusters.count("greeter.demo:50051"), 1u)
      << "a Service that still exists keeps its counters";
  auto* again = manager_.find("greeter.demo:50051");
  ASSERT_NE(again, nullptr) << "the next call makes it again";
  EXPECT_EQ(again->stats->calls.calls_total, 1u) << "its counters continue";
  EXPECT_EQ(manager_.mesh_cluster_count(), 2u);
}

TEST_F(MeshClusterTest, AServiceThatLeftStopsTakingCallsAndGoesWithItsCounters) {
  manager_.set_mesh(table({route("greeter", 2, 1)}));
  auto* greeter = manager_.find("greeter.demo:50051");
  ASSERT_NE(greeter, nullptr);
  greeter->stats->calls.in_flight = 1;
  manager_.set_mesh(table({}));  // the Service was deleted
  EXPECT_TRUE(greeter->snapshot->hosts.empty()) << "no new calls";
  EXPECT_TRUE(greeter->pools.empty());
  clock_.advance(milliseconds(30000));
  EXPECT_EQ(manager_.mesh_cluster_count(), 1u) << "kept while its call runs";
  greeter->stats->calls.in_flight = 0;
  clock_.advance(milliseconds(12000));
  EXPECT_EQ(manager_.mesh_cluster_count(), 0u);
  EXPECT_EQ(ctx_.stats.clusters.count("greeter.demo:50051"), 0u) << "its counters went too";
  EXPECT_EQ(manager_.find("greeter.demo:50051"), nullptr);
}

}  // namespace
}  // namespace h2mesh::proxy
