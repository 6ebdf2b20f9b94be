// The Service map's watcher against the fake API server (tests/fakes/fake_kube_apiserver.py, a
// real process on loopback): the first map once Services and EndpointSlices are both listed,
// every kind of change, one map per burst of events, and what happens when the API server goes
// down, is slow, sends garbage or a 410: the last good map stays, the watcher lists again with
// backoff, logs a line and counts.
//
// Everything runs on one net::EventLoop in the test thread, in LoopScript steps (no sleeps).

#include "discovery/service_map_watcher.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "fakes/fake_kube_apiserver.h"
#include "fakes/loop_script.h"
#include "net/event_loop.h"

namespace h2mesh::discovery {
namespace {

using namespace std::chrono_literals;
using FakeApiServer = h2mesh_test_fakes::FakeKubeApiServer;
using Script = h2mesh_test_fakes::LoopScript;

std::string ep(const std::string& ip, bool ready = true) {
  return R"({"addresses":[")" + ip + R"("],"conditions":{"ready":)" + (ready ? "true" : "false") +
         R"(,"serving":true,"terminating":false}})";
}

// PUT /slices body: slice of `service` in `ns` with these pods on target port 8080 ("grpc").
std::string slice(const std::string& ns, const std::string& service,
                  const std::vector<std::string>& pods) {
  std::string eps;
  for (const auto& p : pods) eps += (eps.empty() ? "" : ",") + ep(p);
  return R"({"namespace":")" + ns + R"(","service":")" + service + R"(","endpoints":[)" + eps +
         R"(],"ports":[{"name":"grpc","protocol":"TCP","port":8080}]})";
}

std::string grpc_spec(const std::string& cluster_ip) {
  return R"({"clusterIP":")" + cluster_ip +
         R"(","ports":[{"name":"grpc","port":50051,)"
         R"("targetPort":"grpc"}]})";
}

// "ns/name:port [endpoint ...]" per entry, in map order.
std::vector<std::string> describe(const ServiceMapPtr& map) {
  std::vector<std::string> out;
  if (!map) return out;
  for (const auto& s : map->services) {
    std::string line = s->namespace_ + "/" + s->service + ":" + std::to_string(s->port);
    for (const auto& e : s->endpoints)
      line += " " + e.address.to_string() + (e.ready ? "" : "(notready)");
    out.push_back(line);
  }
  return out;
}

class ServiceMapWatcherTest : public ::testing::Test {
 protected:
  ServiceMapWatcherTest() {
    char tmpl[] = "/tmp/h2mesh-smap-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~ServiceMapWatcherTest() override {
    watcher_.reset();
    loop_.run_deferred();
    fake_.reset();
    std::filesystem::remove_all(dir_);
  }

  FakeApiServer& start_fake(std::vector<std::string> flags = {}) {
    fake_ = std::make_unique<FakeApiServer>(dir_, std::move(flags));
    return *fake_;
  }

  // Two Services in grpcdemo and one in shop, each with one slice.
  void populate() {
    fake_->put_service("grpcdemo", "greeter", grpc_spec("10.96.0.15"));
    fake_->put_service("grpcdemo", "echo", grpc_spec("10.96.0.16"));
    fake_->put_service("shop", "cart", grpc_spec("10.96.1.20"));
    fake_->put_slice("grpcdemo/greeter-a",
                     slice("grpcdemo", "greeter", {"10.244.1.10", "10.244.1.11"}));
    fake_->put_slice("grpcdemo/echo-a", slice("grpcdemo", "echo", {"10.244.2.10"}));
    fake_->put_slice("shop/cart-a", slice("shop", "cart", {"10.244.3.10"}));
  }
  const std::vector<std::string> kPopulated = {
      "grpcdemo/echo:50051 10.244.2.10:8080",
      "grpcdemo/greeter:50051 10.244.1.10:8080 10.244.1.11:8080",
      "shop/cart:50051 10.244.3.10:8080"};

  std::string kubeconfig(const std::string& token = "test-token") {
    std::string path = dir_ + "/kubeconfig-" + std::to_string(++configs_);
    std::ofstream out(path);
    out << "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
        << "    server: " << fake_->url() << "\n";
    if (fake_->url().rfind("https", 0) == 0)
      out << "    certificate-authority: " << fake_->ca() << "\n";
    out << "users:\n- name: u\n  user:\n    token: " << token
        << "\ncontexts:\n- name: c\n  context: {cluster: fake, user: u}\ncurrent-context: c\n";
    return path;
  }

  void make_watcher(const std::string& kubeconfig_path, std::vector<std::string> namespaces = {},
                    size_t page_size = 500) {
    ServiceMapWatcher::Settings s;
    s.kubeconfig = kubeconfig_path;
    s.namespaces = std::move(namespaces);
    s.list_page_size = page_size;
    s.backoff_base = 20ms;
    s.backoff_max = 200ms;
    watcher_ = std::make_unique<ServiceMapWatcher>(
        loop_, s, [this](ServiceMapPtr map) { updates_.push_back(std::move(map)); });
  }

  std::function<void()> start() {
    return [this] { watcher_->start(); };
  }
  std::function<bool()> map_is(std::vector<std::string> want) {
    return [this, want] { return !updates_.empty() && describe(updates_.back()) == want; };
  }
  std::function<bool()> error_contains(std::string text) {
    return [this, text] { return watcher_->last_error().find(text) != std::string::npos; };
  }
  // Both collections are being watched (one watch each per scope).
  std::function<bool()> watching(int watches = 2) {
    return [this, watches] { return fake_->stat("open_watches") == watches; };
  }

  std::string dir_;
  net::EventLoop loop_;
  std::unique_ptr<FakeApiServer> fake_;
  std::unique_ptr<ServiceMapWatcher> watcher_;
  std::vector<ServiceMapPtr> updates_;
  int configs_ = 0;
};

TEST_F(ServiceMapWatcherTest, FirstMapComesOnceServicesAndSlicesAreBothListed) {
  auto& fake = start_fake();
  populate();
  // Not part of the map: headless, ExternalName, UDP.
  fake.put_service("grpcdemo", "greeter-headless",
                   R"({"clusterIP":"None","ports":[{"name":"grpc","port":50051}]})");
  fake.put_service("grpcdemo", "billing", R"({"type":"ExternalName","externalName":"b.example"})");
  fake.put_service(
      "kube-system", "kube-dns",
      R"({"clusterIP":"10.96.0.10","ports":[{"name":"dns","protocol":"UDP","port":53}]})");
  make_watcher(kubeconfig());
  EXPECT_FALSE(watcher_->synced());
  std::string failed =
      Script(loop_).step("sync", start(), map_is(kPopulated)).wait("watching", watching()).run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  // One map for the whole initial state, not one per collection.
  EXPECT_EQ(updates_.size(), 1u);
  EXPECT_TRUE(watcher_->synced());
  EXPECT_EQ(watcher_->last_error(), "");
  EXPECT_EQ(watcher_->current(), updates_.back());
  const ServiceMap& map = *updates_.back();
  EXPECT_EQ(map.version, 1u);
  const MeshService* greeter = map.find(config::SocketAddress{"10.96.0.15", 50051});
  ASSERT_TRUE(greeter);
  EXPECT_EQ(greeter->service, "greeter");
  // Cluster-wide requests: one of each collection.
  auto paths = fake.paths();
  EXPECT_EQ(std::count(paths.begin(), paths.end(), "/api/v1/services"), 2);  // LIST, WATCH
  EXPECT_EQ(std::count(paths.begin(), paths.end(), "/apis/discovery.k8s.io/v1/endpointslices"), 2);
  auto c = watcher_->counters();
  EXPECT_EQ(c.services.lists, 1u);
  EXPECT_EQ(c.endpoint_slices.lists, 1u);
  EXPECT_EQ(c.services.watches, 1u);
  EXPECT_EQ(c.endpoint_slices.watches, 1u);
  EXPECT_EQ(c.maps_published, 1u);
  EXPECT_EQ(c.services_known, 6u);
  EXPECT_EQ(c.slices_known, 3u);
  EXPECT_EQ(c.map_entries, 3u);
}

TEST_F(ServiceMapWatcherTest, EveryKindOfChangeIsReflectedAndUntouchedEntriesStay) {
  auto& fake = start_fake();
  populate();
  make_watcher(kubeconfig());
  const MeshService* cart = nullptr;
  std::string failed =
      Script(loop_)
          .step("sync", start(), map_is(kPopulated))
          .wait("watching", watching())
          .step(
              "scale up: a pod joins the slice",
              [&] {
                cart = updates_.back()->find(config::SocketAddress{"10.96.1.20", 50051});
                fake.put_slice(
                    "grpcdemo/greeter-a",
                    slice("grpcdemo", "greeter", {"10.244.1.10", "10.244.1.11", "10.244.1.12"}));
              },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.1.10:8080 10.244.1.11:8080 10.244.1.12:8080",
                      "shop/cart:50051 10.244.3.10:8080"}))
          .step(
              "a second slice of the same Service",
              [&] {
                fake.put_slice("grpcdemo/greeter-b", slice("grpcdemo", "greeter", {"10.244.9.1"}));
              },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.1.10:8080 10.244.1.11:8080 10.244.1.12:8080 "
                      "10.244.9.1:8080",
                      "shop/cart:50051 10.244.3.10:8080"}))
          .step(
              "scale down: the first slice goes", [&] { fake.delete_slice("grpcdemo/greeter-a"); },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.9.1:8080",
                      "shop/cart:50051 10.244.3.10:8080"}))
          .step(
              "a new Service (its slice first)",
              [&] {
                fake.put_slice("shop/pay-a", slice("shop", "pay", {"10.244.4.10"}));
                fake.put_service("shop", "pay", grpc_spec("10.96.1.21"));
              },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.9.1:8080", "shop/cart:50051 10.244.3.10:8080",
                      "shop/pay:50051 10.244.4.10:8080"}))
          .step(
              "a Service changes its port",
              [&] {
                fake.put_service(
                    "grpcdemo", "echo",
                    R"({"clusterIP":"10.96.0.16","ports":[{"name":"grpc","port":7070}]})");
              },
              map_is({"grpcdemo/echo:7070 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.9.1:8080", "shop/cart:50051 10.244.3.10:8080",
                      "shop/pay:50051 10.244.4.10:8080"}))
          .step(
              "a Service goes", [&] { fake.delete_service("grpcdemo", "echo"); },
              map_is({"grpcdemo/greeter:50051 10.244.9.1:8080", "shop/cart:50051 10.244.3.10:8080",
                      "shop/pay:50051 10.244.4.10:8080"}))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  // The cart Service never changed: every map has the same object for it.
  ASSERT_TRUE(cart);
  for (const auto& map : updates_)
    EXPECT_EQ(map->find(config::SocketAddress{"10.96.1.20", 50051}), cart);
  EXPECT_EQ(updates_.back()->find(config::SocketAddress{"10.96.0.16", 7070}), nullptr);
  EXPECT_EQ(fake.stat("lists"), 2);  // one per collection: everything came by the watches
  EXPECT_EQ(watcher_->counters().services.events, 3u);  // pay added, echo changed, echo gone
  EXPECT_EQ(watcher_->counters().endpoint_slices.events, 4u);
}

// Events that arrive together (one read of the watch stream) make one map.
TEST_F(ServiceMapWatcherTest, BurstOfEventsGivesOneMap) {
  auto& fake = start_fake();
  populate();
  make_watcher(kubeconfig());
  constexpr int kChanges = 20;
  size_t maps_before = 0;
  std::string failed =
      Script(loop_)
          .step("sync", start(), map_is(kPopulated))
          .wait("watching", watching())
          .step(
              "20 changes written before the loop reads any",
              [&] {
                maps_before = updates_.size();
                int sent = fake.stat("events_sent");
                std::string load = R"({"slices":[)";
                for (int i = 0; i < kChanges; ++i) {
                  load += std::string(i ? "," : "") +
                          R"({"namespace":"grpcdemo","name":"greeter-a",)" +
                          R"("service":"greeter","endpoints":[)" +
                          ep("10.244.1." + std::to_string(10 + i)) +
                          R"(],"ports":[{"name":"grpc","port":8080}]})";
                }
                fake.control("POST", "/load", load + "]}");
                // The loop is not running while this step acts: wait (bounded) until the fake has
                // written every event to the socket.
                for (int i = 0; i < 5000 && fake.stat("events_sent") < sent + kChanges; ++i)
                  std::this_thread::sleep_for(1ms);
                EXPECT_EQ(fake.stat("events_sent"), sent + kChanges);
              },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.1.29:8080",
                      "shop/cart:50051 10.244.3.10:8080"}))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  EXPECT_EQ(updates_.size(), maps_before + 1);
  EXPECT_EQ(watcher_->counters().endpoint_slices.events, static_cast<uint64_t>(kChanges));
}

TEST_F(ServiceMapWatcherTest, ApiServerDownKeepsTheLastMapThenRelistsWithBackoff) {
  auto& fake = start_fake();
  populate();
  make_watcher(kubeconfig());
  ServiceMapPtr before_down;
  uint64_t failures_when_down = 0;
  testing::internal::CaptureStderr();
  std::string failed =
      Script(loop_)
          .step("sync", start(), map_is(kPopulated))
          .wait("watching", watching())
          .step(
              "the API server goes down",
              [&] {
                before_down = watcher_->current();
                failures_when_down = watcher_->counters().services.failures;
                fake.control("POST", "/down", R"({"down":true})");
              },
              error_contains("kubernetes: cannot connect to the API server " + fake.url() +
                             ": connect: Connection refused"))
          .wait("retried, with backoff",
                [&] { return watcher_->counters().services.failures >= failures_when_down + 4; })
          .step(
              "history is compacted meanwhile, a pod joins; the server comes back",
              [&] {
                EXPECT_TRUE(watcher_->synced());
                EXPECT_EQ(watcher_->current(), before_down);  // the last good map stays in use
                fake.control("POST", "/expire", R"({"mode":"http"})");
                fake.put_slice("grpcdemo/echo-a",
                               slice("grpcdemo", "echo", {"10.244.2.10", "10.244.2.11"}));
                fake.control("POST", "/down", R"({"down":false})");
              },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080 10.244.2.11:8080",
                      "grpcdemo/greeter:50051 10.244.1.10:8080 10.244.1.11:8080",
                      "shop/cart:50051 10.244.3.10:8080"}))
          .wait("watching again", watching())
          .run();
  std::string log = testing::internal::GetCapturedStderr();
  ASSERT_EQ(failed, "") << watcher_->last_error() << "\n" << log;
  EXPECT_EQ(watcher_->last_error(), "");
  EXPECT_EQ(updates_.size(), 2u);  // nothing published while down
  // The watches' resourceVersion was too old by then: 410, and each collection listed again.
  auto c = watcher_->counters();
  EXPECT_EQ(c.services.lists, 2u);
  EXPECT_EQ(c.endpoint_slices.lists, 2u);
  EXPECT_GE(c.services.relists, 1u);
  EXPECT_GE(c.endpoint_slices.relists, 1u);
  // One log line per collection for a repeated error, not one per attempt.
  std::string refused = "cannot connect to the API server " + fake.url();
  size_t lines = 0;
  for (size_t at = log.find(refused); at != std::string::npos; at = log.find(refused, at + 1))
    ++lines;
  EXPECT_EQ(lines, 2u) << log;
  EXPECT_NE(log.find("(service map, Services; retrying in "), std::string::npos) << log;
  EXPECT_NE(log.find("service map, EndpointSlices: the API server " + fake.url() + " works again"),
            std::string::npos)
      << log;
}

TEST_F(ServiceMapWatcherTest, GarbageKeepsTheLastMapAndListsAgain) {
  auto& fake = start_fake();
  populate();
  fake.control("POST", "/garbage", R"({"lists":1})");  // the first LIST (either collection)
  make_watcher(kubeconfig());
  ServiceMapPtr synced_map;
  std::string failed =
      Script(loop_)
          .step("sync despite a bad list", start(), map_is(kPopulated))
          .wait("watching", watching())
          .step(
              "a watch line that is not JSON",
              [&] {
                synced_map = watcher_->current();
                fake.control("POST", "/garbage", R"({"watch":true})");
              },
              [&] {
                auto c = watcher_->counters();
                return fake.stat("lists") == 5 && c.services.watches == 2 &&
                       c.endpoint_slices.watches == 2 && fake.stat("open_watches") == 2;
              })
          .step(
              "changes are followed after the relist", [&] { fake.delete_slice("shop/cart-a"); },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.1.10:8080 10.244.1.11:8080",
                      "shop/cart:50051"}))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  // The relists brought the same objects: no map in between.
  EXPECT_EQ(updates_.size(), 2u);
  EXPECT_EQ(updates_[0], synced_map);
  auto c = watcher_->counters();
  EXPECT_EQ(c.services.failures + c.endpoint_slices.failures, 3u);  // 1 list + 2 watch lines
  EXPECT_EQ(c.services.relists, 1u);
  EXPECT_EQ(c.endpoint_slices.relists, 1u);
  EXPECT_EQ(fake.stat("garbage_sent"), 3);
}

TEST_F(ServiceMapWatcherTest, GoneOnTheWatchRelistsAndKeepsTheMapMeanwhile) {
  auto& fake = start_fake();
  populate();
  make_watcher(kubeconfig());
  std::string failed =
      Script(loop_)
          .step("sync", start(), map_is(kPopulated))
          .wait("watching", watching())
          .step(
              "410 as an ERROR event on both watches",
              [&] { fake.control("POST", "/expire", R"({"mode":"event"})"); },
              [&] { return fake.stat("lists") == 4 && fake.stat("open_watches") == 2; })
          .step(
              "410 as an HTTP reply to both re-watches",
              [&] { fake.control("POST", "/expire", R"({"mode":"http"})"); },
              [&] { return fake.stat("lists") == 6 && fake.stat("open_watches") == 2; })
          .step(
              "changes are followed", [&] { fake.delete_service("shop", "cart"); },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.1.10:8080 10.244.1.11:8080"}))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  EXPECT_EQ(updates_.size(), 2u);
  EXPECT_EQ(fake.stat("gone"), 4);
  EXPECT_EQ(watcher_->counters().services.relists, 2u);
  EXPECT_EQ(watcher_->counters().endpoint_slices.relists, 2u);
}

// Large collections come in pages of one snapshot; a continue token that expired between two
// pages (etcd compacted meanwhile) starts the LIST again from its first page.
TEST_F(ServiceMapWatcherTest, ListsComeInPagesAndAnExpiredPageStartsOver) {
  auto& fake = start_fake();
  populate();
  make_watcher(kubeconfig(), {}, /*page_size=*/2);
  std::string failed =
      Script(loop_)
          .step("sync, 2 pages per collection", start(), map_is(kPopulated))
          .wait("watching", watching())
          .step(
              "410 on the watches; the second page of the next LIST is gone too",
              [&] {
                EXPECT_EQ(fake.stat("lists"), 4);
                EXPECT_EQ(fake.stat("continued"), 2);
                fake.control("POST", "/continue-gone", R"({"count":1})");
                fake.control("POST", "/expire", R"({"mode":"event"})");
              },
              [&] {
                auto c = watcher_->counters();
                return c.services.lists == 2 && c.endpoint_slices.lists == 2 &&
                       fake.stat("open_watches") == 2;
              })
          .step(
              "changes are followed", [&] { fake.delete_slice("grpcdemo/greeter-a"); },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080", "grpcdemo/greeter:50051",
                      "shop/cart:50051 10.244.3.10:8080"}))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  // 4 pages at first, 4 after the 410s, and the first page again plus the 410 on its second.
  EXPECT_EQ(fake.stat("lists"), 10);
  EXPECT_EQ(fake.stat("gone"), 3);  // two watches and one continue token
  EXPECT_EQ(updates_.size(), 2u);   // the same objects again: no map in between
}

TEST_F(ServiceMapWatcherTest, SlowApiServerIsWaitedFor) {
  auto& fake = start_fake();
  populate();
  fake.control("POST", "/delay", R"({"seconds":0.5})");
  make_watcher(kubeconfig());
  std::string failed =
      Script(loop_)
          .step("sync, slowly", start(), map_is(kPopulated))
          .wait("watching", watching())
          .step(
              "watches cut; the re-watches are slow too",
              [&] {
                fake.put_slice("shop/cart-a", slice("shop", "cart", {"10.244.3.11"}));
                fake.control("POST", "/drop-watches");
              },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.1.10:8080 10.244.1.11:8080",
                      "shop/cart:50051 10.244.3.11:8080"}))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  EXPECT_EQ(fake.stat("lists"), 2);  // the cut watches resumed from their resourceVersion
  EXPECT_EQ(updates_.size(), 2u);
}

TEST_F(ServiceMapWatcherTest, WrongTokenNeverSyncsUntilItIsAccepted) {
  auto& fake = start_fake({"--token", "the-real-token"});
  populate();
  make_watcher(kubeconfig("a-stale-token"));
  std::string failed =
      Script(loop_)
          .step("401", start(),
                error_contains("kubernetes: API server rejected the token (401 Unauthorized)"))
          .wait("retried", [&] { return fake.stat("unauthorized") >= 4; })
          .step(
              "the token is accepted",
              [&] {
                EXPECT_FALSE(watcher_->synced());
                EXPECT_TRUE(updates_.empty());
                fake.control("POST", "/token", R"({"token":"a-stale-token"})");
              },
              map_is(kPopulated))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  EXPECT_EQ(watcher_->last_error(), "");
}

TEST_F(ServiceMapWatcherTest, NamespacesListedAreTheOnlyOnesWatched) {
  auto& fake = start_fake();
  populate();
  fake.put_service("other", "x", grpc_spec("10.96.9.9"));
  fake.put_slice("other/x-a", slice("other", "x", {"10.244.9.9"}));
  // An account with Roles in some namespaces only: cluster-wide requests are forbidden.
  fake.control("POST", "/forbid", R"({"forbid":true,"scope":"cluster"})");
  make_watcher(kubeconfig(), {"grpcdemo", "shop", "grpcdemo"});  // a namespace twice is once
  std::string failed =
      Script(loop_)
          .step("sync", start(), map_is(kPopulated))
          .wait("watching", watching(4))
          .step(
              "changes elsewhere are not seen; those in a listed namespace are",
              [&] {
                fake.put_slice("other/x-a", slice("other", "x", {"10.244.9.10"}));
                fake.put_slice("shop/cart-a", slice("shop", "cart", {"10.244.3.11"}));
              },
              map_is({"grpcdemo/echo:50051 10.244.2.10:8080",
                      "grpcdemo/greeter:50051 10.244.1.10:8080 10.244.1.11:8080",
                      "shop/cart:50051 10.244.3.11:8080"}))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  EXPECT_EQ(fake.stat("forbidden"), 0);
  for (const auto& p : fake.paths())
    EXPECT_NE(p.find("/namespaces/"), std::string::npos) << p << " is cluster-wide";
  EXPECT_EQ(watcher_->counters().services.lists, 2u);  // one per namespace
}

TEST_F(ServiceMapWatcherTest, ClusterWideWithoutAClusterRoleSaysWhatIsMissing) {
  auto& fake = start_fake();
  populate();
  fake.control("POST", "/forbid", R"({"forbid":true,"scope":"cluster"})");
  make_watcher(kubeconfig());
  std::string failed =
      Script(loop_)
          .step("403", start(),
                error_contains("kubernetes: API server denied access (403 Forbidden)"))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  EXPECT_NE(watcher_->last_error().find("the account needs get, list and watch on "),
            std::string::npos)
      << watcher_->last_error();
  EXPECT_NE(watcher_->last_error().find("cluster-wide (a ClusterRole), or name the namespaces"),
            std::string::npos)
      << watcher_->last_error();
  EXPECT_FALSE(watcher_->synced());
}

// kubectl proxy beside the sidecar.
TEST_F(ServiceMapWatcherTest, PlainHttpKubeconfigServer) {
  auto& fake = start_fake({"--http"});
  populate();
  make_watcher(kubeconfig());
  std::string failed = Script(loop_)
                           .step("sync", start(), map_is(kPopulated))
                           .wait("watching", watching())
                           .step(
                               "follows a change", [&] { fake.delete_slice("grpcdemo/echo-a"); },
                               map_is({"grpcdemo/echo:50051",
                                       "grpcdemo/greeter:50051 10.244.1.10:8080 10.244.1.11:8080",
                                       "shop/cart:50051 10.244.3.10:8080"}))
                           .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
}

TEST_F(ServiceMapWatcherTest, DualStackServiceIsFoundByEitherClusterIp) {
  auto& fake = start_fake();
  fake.put_service("grpcdemo", "greeter",
                   R"({"clusterIP":"10.96.0.15","clusterIPs":["10.96.0.15","fd00:10:96::f"],)"
                   R"("ports":[{"name":"grpc","port":50051}]})");
  fake.put_slice("grpcdemo/greeter-v4", slice("grpcdemo", "greeter", {"10.244.1.10"}));
  fake.put_slice("grpcdemo/greeter-v6",
                 R"({"namespace":"grpcdemo","service":"greeter","addressType":"IPv6",)"
                 R"("endpoints":[{"addresses":["fd00:10:244::a"]}],)"
                 R"("ports":[{"name":"grpc","port":8080}]})");
  make_watcher(kubeconfig());
  std::string failed = Script(loop_)
                           .step("sync", start(),
                                 map_is({"grpcdemo/greeter:50051 10.244.1.10:8080 "
                                         "[fd00:10:244::a]:8080"}))
                           .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  const ServiceMap& map = *updates_.back();
  EXPECT_EQ(map.find(config::SocketAddress{"fd00:10:96::f", 50051}),
            map.find(config::SocketAddress{"10.96.0.15", 50051}));
  EXPECT_EQ(map.by_address.size(), 2u);
}

}  // namespace
}  // namespace h2mesh::discovery
