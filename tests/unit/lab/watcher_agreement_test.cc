// The demo's API server and h2mesh's own Service map watcher agree: what the demo publishes is
// what the sidecar learns, first from its LISTs, then from the watches (MODIFIED, DELETED), over
// a kubeconfig with an http:// server and a token, as in `h2mesh demo --mesh`. Loopback only; one
// event loop in the test thread, scripted steps, no sleeps.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "discovery/service_map_watcher.h"
#include "fakes/loop_script.h"
#include "lab/kube_api_server.h"
#include "net/event_loop.h"

namespace h2mesh::lab {
namespace {

using namespace std::chrono_literals;
using Script = h2mesh_test_fakes::LoopScript;

SliceEndpoint ep(const std::string& ip, bool ready = true) { return {ip, ready, true, false, ""}; }

// "ns/name:port endpoint..." per map entry; the map keeps endpoints that are not ready, marked.
std::vector<std::string> describe(const discovery::ServiceMapPtr& map) {
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

class WatcherAgreementTest : public ::testing::Test {
 protected:
  WatcherAgreementTest() {
    char tmpl[] = "/tmp/h2mesh-lab-watch-XXXXXX";
    dir_ = mkdtemp(tmpl);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd, 16), 0);
    server_ = std::make_unique<KubeApiServer>(store_, fd, KubeApiServer::Settings{"demo-token"});
    std::ofstream(dir_ + "/kubeconfig")
        << "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: "
           "http://127.0.0.1:"
        << server_->port()
        << "\nusers:\n- name: h2mesh\n  user:\n    token: demo-token\ncontexts:\n- name: lab\n"
           "  context:\n    cluster: lab\n    user: h2mesh\ncurrent-context: lab\n";
    discovery::ServiceMapWatcher::Settings s;
    s.kubeconfig = dir_ + "/kubeconfig";
    s.backoff_base = 20ms;
    s.backoff_max = 200ms;
    watcher_ = std::make_unique<discovery::ServiceMapWatcher>(
        loop_, s, [this](discovery::ServiceMapPtr map) { maps_.push_back(std::move(map)); });
  }
  ~WatcherAgreementTest() override {
    watcher_.reset();
    loop_.run_deferred();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::function<bool()> map_is(std::vector<std::string> want) {
    return [this, want] { return !maps_.empty() && describe(maps_.back()) == want; };
  }
  void put_greeter_slice(std::vector<SliceEndpoint> endpoints) {
    store_.put_slice({"grpcdemo",
                      "greeter-lab01",
                      "greeter",
                      std::move(endpoints),
                      {{"grpc", 50051, 0, "kubernetes.io/h2c"}}});
  }

  std::string dir_;
  ObjectStore store_;
  std::unique_ptr<KubeApiServer> server_;
  net::EventLoop loop_;
  std::unique_ptr<discovery::ServiceMapWatcher> watcher_;
  std::vector<discovery::ServiceMapPtr> maps_;
};

TEST_F(WatcherAgreementTest, SidecarLearnsTheDemosServiceAndFollowsItsEndpoints) {
  store_.put_service({"grpcdemo", "greeter", "10.96.0.10", {{"grpc", 50051, 50051, ""}}});
  put_greeter_slice({ep("10.244.0.10"), ep("10.244.0.11")});
  std::string failed =
      Script(loop_)
          .step(
              "listed", [&] { watcher_->start(); },
              map_is({"grpcdemo/greeter:50051 10.244.0.10:50051 10.244.0.11:50051"}))
          .wait("watching", [&] { return server_->watches() == 2; })
          .step(
              "a pod becomes ready (MODIFIED)",
              [&] {
                put_greeter_slice({ep("10.244.0.10"), ep("10.244.0.11"), ep("10.244.0.12")});
              },
              map_is({"grpcdemo/greeter:50051 10.244.0.10:50051 10.244.0.11:50051 "
                      "10.244.0.12:50051"}))
          .step(
              "one stops being ready",
              [&] {
                put_greeter_slice({ep("10.244.0.10"), ep("10.244.0.11", false), ep("10.244.0.12")});
              },
              map_is({"grpcdemo/greeter:50051 10.244.0.10:50051 10.244.0.11:50051(notready) "
                      "10.244.0.12:50051"}))
          .step(
              "a second Service (ADDED)",
              [&] {
                store_.put_service({"shop", "cart", "10.96.1.20", {{"grpc", 9000, 8080, ""}}});
                store_.put_slice(
                    {"shop", "cart-lab01", "cart", {ep("10.244.0.30")}, {{"grpc", 8080, 0, ""}}});
              },
              map_is({"grpcdemo/greeter:50051 10.244.0.10:50051 10.244.0.11:50051(notready) "
                      "10.244.0.12:50051",
                      "shop/cart:9000 10.244.0.30:8080"}))
          .step(
              "the Service goes (DELETED)",
              [&] { store_.remove(Resource::Services, "shop", "cart"); },
              map_is({"grpcdemo/greeter:50051 10.244.0.10:50051 10.244.0.11:50051(notready) "
                      "10.244.0.12:50051"}))
          .run();
  ASSERT_EQ(failed, "") << watcher_->last_error();
  EXPECT_EQ(watcher_->last_error(), "");
  // Everything after the first LISTs came through the two watches.
  EXPECT_EQ(server_->lists(), 2u);
  EXPECT_EQ(server_->watches(), 2u);
}

}  // namespace
}  // namespace h2mesh::lab
