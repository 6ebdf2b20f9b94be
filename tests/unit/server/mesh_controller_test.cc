// MeshController: the Service map becomes the workers' MeshTable (per-Service clusters with the
// mesh's settings, one route per cluster IP and port, unchanged routes shared between tables).
// No API server: the test hands it maps as the watcher would.

#include "server/mesh_controller.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "net/event_loop.h"

namespace h2mesh::server {
namespace {

std::shared_ptr<discovery::MeshService> service(const std::string& name,
                                                std::vector<std::string> ips,
                                                std::vector<std::string> endpoints) {
  auto s = std::make_shared<discovery::MeshService>();
  s->namespace_ = "grpcdemo";
  s->service = name;
  s->port_name = "grpc";
  s->port = 50051;
  for (const auto& ip : ips) s->cluster_ips.push_back(config::SocketAddress{ip, 50051});
  for (const auto& ep : endpoints) {
    cluster::DiscoveredEndpoint d;
    d.address = config::SocketAddress{ep, 8080};
    s->endpoints.push_back(d);
  }
  return s;
}

discovery::ServiceMapPtr map_of(std::vector<std::shared_ptr<const discovery::MeshService>> all) {
  auto m = std::make_shared<discovery::ServiceMap>();
  m->services = std::move(all);
  return m;
}

class MeshControllerTest : public ::testing::Test {
 protected:
  explicit MeshControllerTest(std::shared_ptr<config::Config> cfg = nullptr) {
    if (!cfg) cfg = std::make_shared<config::Config>();
    cfg->mesh.enabled = true;
    config_ = cfg;
    controller_ = std::make_unique<MeshController>(loop_, config_, [this](proxy::MeshTablePtr t) {
      tables_.push_back(std::move(t));
    });
  }
  // Runs the deferred publication.
  proxy::MeshTablePtr settle() {
    loop_.run_ready();
    return tables_.empty() ? nullptr : tables_.back();
  }

  net::EventLoop loop_;
  std::shared_ptr<const config::Config> config_;
  std::unique_ptr<MeshController> controller_;
  std::vector<proxy::MeshTablePtr> tables_;
};

TEST_F(MeshControllerTest, EveryClusterIpAndPortLeadsToTheServicesCluster) {
  std::string why;
  EXPECT_FALSE(controller_->synced(&why));
  EXPECT_NE(why.find("no Service map"), std::string::npos) << why;
  controller_->apply(map_of({service("greeter", {"10.96.0.10", "fd00::10"},
                                     {"10.244.0.11", "10.244.0.12", "fd00::11", "fd00::12"}),
                             service("billing", {"10.96.0.20"}, {"10.244.0.21"})}));
  auto table = settle();
  ASSERT_TRUE(table);
  EXPECT_TRUE(controller_->synced(&why));
  EXPECT_EQ(tables_.size(), 1u) << "one table for the whole map";
  const proxy::MeshRoute* greeter = table->find_address({"10.96.0.10", 50051});
  ASSERT_NE(greeter, nullptr);
  EXPECT_EQ(greeter, table->find_address({"fd00::10", 50051})) << "both families, one cluster";
  EXPECT_EQ(greeter->cluster, "greeter.grpcdemo:50051");
  EXPECT_EQ(greeter->service, "greeter");
  EXPECT_EQ(greeter->namespace_, "grpcdemo");
  ASSERT_EQ(greeter->snapshot->hosts.size(), 2u) << "each pod once: the primary family's address";
  EXPECT_EQ(greeter->snapshot->hosts[0].key, "10.244.0.11:8080");
  auto listener = proxy::make_mesh_listener(table->config->mesh, *greeter);
  ASSERT_EQ(listener->routes.size(), 1u);
  EXPECT_EQ(listener->routes[0].cluster, "greeter.grpcdemo:50051");
  EXPECT_EQ(table->find_cluster("billing.grpcdemo:50051"), table->find_address({"10.96.0.20", 50051}));
  EXPECT_EQ(table->find_address({"10.96.0.99", 50051}), nullptr);
}

TEST_F(MeshControllerTest, UnchangedServicesKeepTheirRouteAndChangesMakeNewOnes) {
  auto greeter = service("greeter", {"10.96.0.10"}, {"10.244.0.11"});
  auto billing = service("billing", {"10.96.0.20"}, {"10.244.0.21"});
  controller_->apply(map_of({greeter, billing}));
  auto first = settle();
  auto billing2 = service("billing", {"10.96.0.20"}, {"10.244.0.21", "10.244.0.22"});  // scaled
  controller_->apply(map_of({greeter, billing2}));
  auto second = settle();
  ASSERT_NE(first, second);
  EXPECT_EQ(first->find_cluster("greeter.grpcdemo:50051"),
            second->find_cluster("greeter.grpcdemo:50051"))
      << "the same route object: workers keep its pools untouched";
  EXPECT_EQ(second->find_cluster("billing.grpcdemo:50051")->snapshot->hosts.size(), 2u);
  controller_->apply(map_of({greeter}));  // billing deleted
  auto third = settle();
  EXPECT_EQ(third->find_cluster("billing.grpcdemo:50051"), nullptr);
  EXPECT_EQ(third->find_address({"10.96.0.20", 50051}), nullptr);
  EXPECT_EQ(controller_->service_count(), 1u);
}

TEST_F(MeshControllerTest, OutliersOfMeshClustersAreEjectedHere) {
  auto greeter = service("greeter", {"10.96.0.10"},
                         {"10.244.0.11", "10.244.0.12", "10.244.0.13", "10.244.0.14"});
  controller_->apply(map_of({greeter}));
  settle();
  EXPECT_FALSE(controller_->report_outlier("not-a-mesh-cluster", "10.244.0.11:8080"));
  EXPECT_TRUE(controller_->report_outlier("greeter.grpcdemo:50051", "10.244.0.11:8080"));
  auto table = settle();
  const auto& hosts = table->find_cluster("greeter.grpcdemo:50051")->snapshot->hosts;
  ASSERT_EQ(hosts.size(), 4u);
  EXPECT_TRUE(hosts[0].ejected);
  EXPECT_FALSE(hosts[1].ejected);
}

class MeshControllerSettingsTest : public MeshControllerTest {
 protected:
  static std::shared_ptr<config::Config> with_override() {
    auto cfg = std::make_shared<config::Config>();
    cfg->mesh.defaults.cluster.lb_policy = config::LbPolicy::LeastRequest;
    cfg->mesh.defaults.retry.max_attempts = 2;
    config::MeshServiceSettings billing = cfg->mesh.defaults;
    billing.cluster.lb_policy = config::LbPolicy::Random;
    billing.max_timeout = std::chrono::milliseconds(5000);
    cfg->mesh.services.emplace("billing.grpcdemo", billing);
    cfg->mesh.connection.max_concurrent_streams = 77;
    return cfg;
  }
  MeshControllerSettingsTest() : MeshControllerTest(with_override()) {}
};

TEST_F(MeshControllerSettingsTest, DefaultsAndPerServiceOverridesApply) {
  controller_->apply(map_of({service("greeter", {"10.96.0.10"}, {"10.244.0.11"}),
                             service("billing", {"10.96.0.20"}, {"10.244.0.21"})}));
  auto table = settle();
  const proxy::MeshRoute* greeter = table->find_cluster("greeter.grpcdemo:50051");
  const proxy::MeshRoute* billing = table->find_cluster("billing.grpcdemo:50051");
  ASSERT_TRUE(greeter && billing);
  EXPECT_EQ(greeter->snapshot->settings.lb_policy, config::LbPolicy::LeastRequest);
  auto greeter_listener = proxy::make_mesh_listener(table->config->mesh, *greeter);
  EXPECT_EQ(greeter_listener->routes[0].retry.max_attempts, 2u);
  EXPECT_EQ(greeter_listener->routes[0].max_timeout, std::chrono::milliseconds(0));
  EXPECT_EQ(greeter_listener->max_concurrent_streams, 77u);
  EXPECT_EQ(billing->snapshot->settings.lb_policy, config::LbPolicy::Random);
  EXPECT_EQ(proxy::make_mesh_listener(table->config->mesh, *billing)->routes[0].max_timeout,
            std::chrono::milliseconds(5000));
  EXPECT_FALSE(billing->snapshot->settings.health_check.enabled);
}

}  // namespace
}  // namespace h2mesh::server
