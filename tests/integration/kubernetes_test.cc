// Kubernetes discovery end to end: a fake API server (tests/fakes/fake_kube_apiserver.py: HTTPS on
// loopback, bearer token checked, LIST + WATCH in the real wire format) is scripted to add,
// remove, mark not-ready and terminating endpoints that point at real greeter processes; h2mesh
// follows every change while a steady client's calls keep succeeding. Wrong credentials give a
// clear log line and /ready stays 503 with the reason.
//
// The greeters listen on 127.0.0.2-5 with one port, like the pods of one Service: one slice can
// hold them all, as the endpoint-slice controller would make it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "fakes/fake_kube_apiserver.h"
#include "fakes/http_client.h"
#include "harness.h"

namespace h2mesh_test {
namespace {

using h2mesh_test_fakes::http_request;

using namespace std::chrono_literals;

// The fake with the namespace and Service of these tests, certificates in DIR/kube.
class FakeApiServer : public h2mesh_test_fakes::FakeKubeApiServer {
 public:
  FakeApiServer(const std::string& dir, const std::string& token)
      : FakeKubeApiServer(dir + "/kube", {"--token", token, "--namespace", "grpcdemo", "--service",
                                          "greeter", "--bookmark-interval", "1"}) {}
};

// ---- slices ------------------------------------------------------------------------------------

struct Pod {
  std::string ip;
  std::string name;
  bool ready = true;
  bool terminating = false;
};

std::string slice_json(const std::vector<Pod>& pods, uint16_t port) {
  std::string eps;
  for (const auto& p : pods) {
    eps += std::string(eps.empty() ? "" : ",") + R"({"addresses":[")" + p.ip +
           R"("],"conditions":{"ready":)" + (p.ready ? "true" : "false") + R"(,"serving":true,)" +
           R"("terminating":)" + (p.terminating ? "true" : "false") +
           R"(},"targetRef":{"kind":"Pod","namespace":"grpcdemo","name":")" + p.name +
           R"("},"nodeName":"node-1","zone":"zone-a"})";
  }
  return R"({"addressType":"IPv4","endpoints":[)" + eps +
         R"(],"ports":[{"name":"metrics","protocol":"TCP","port":9090},)"
         R"({"name":"grpc","protocol":"TCP","port":)" +
         std::to_string(port) + R"(,"appProtocol":"kubernetes.io/h2c"}]})";
}

// ---- a client that keeps calling -------------------------------------------------------------

class SteadyClient {
 public:
  explicit SteadyClient(const std::string& target)
      : stub_(helloworld::Greeter::NewStub(make_channel(target))) {
    thread_ = std::thread([this] {
      while (!stop_) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 5s);
        helloworld::HelloRequest req;
        req.set_name("steady");
        helloworld::HelloReply reply;
        grpc::Status st = stub_->SayHello(&ctx, req, &reply);
        std::lock_guard<std::mutex> lock(mu_);
        if (st.ok()) {
          ++ok_;
        } else {
          ++failed_;
          errors_.push_back(std::to_string(st.error_code()) + " " + st.error_message());
        }
        std::this_thread::sleep_for(2ms);  // pacing only, not synchronization
      }
    });
  }
  ~SteadyClient() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int ok() {
    std::lock_guard<std::mutex> lock(mu_);
    return ok_;
  }
  int failed() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }
  std::string errors() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& e : errors_) out += e + "\n";
    return out;
  }

 private:
  std::unique_ptr<helloworld::Greeter::Stub> stub_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  int ok_ = 0;
  int failed_ = 0;
  std::vector<std::string> errors_;
};

// ---- fixture -----------------------------------------------------------------------------------

class KubernetesTest : public ProxyTest {
 protected:
  // Greeters greeter-1..n on 127.0.0.2.. with one port (the first one's, picked by the kernel).
  void start_pods(int n) {
    for (int i = 1; i <= n; ++i) {
      std::string ip = "127.0.0." + std::to_string(i + 1);
      backends_.push_back(
          start_backend(dir_, "greeter-" + std::to_string(i), pod_port_, {"--address", ip}));
      ASSERT_NE(backends_.back().port, 0) << "greeter on " << ip;
      pod_port_ = backends_.back().port;
      pods_.push_back(Pod{ip, "greeter-" + std::to_string(i)});
    }
  }
  std::string address(int pod) const { return pods_[pod].ip + ":" + std::to_string(pod_port_); }

  std::string kubeconfig(const std::string& ca, const std::string& token) {
    std::string path = dir_ + "/kubeconfig";
    std::ofstream(path) << "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
                        << "    server: " << fake_->url() << "\n    certificate-authority: " << ca
                        << "\nusers:\n- name: h2mesh\n  user:\n    token: " << token
                        << "\ncontexts:\n- name: fake\n  context: {cluster: fake, user: h2mesh}\n"
                        << "current-context: fake\n";
    return path;
  }

  // One listener, one cluster discovered from the Service "greeter" in "grpcdemo".
  static std::string config(const std::string& kubeconfig_path, int workers = 2) {
    std::string y = "workers: " + std::to_string(workers) + "\n";
    y += "admin:\n  address: \"127.0.0.1:0\"\n";
    y += "listeners:\n  - name: grpc\n    address: \"127.0.0.1:0\"\n    routes:\n"
         "      - cluster: greeter\n";
    y += "clusters:\n  - name: greeter\n    lb_policy: round_robin\n    discovery:\n"
         "      kubernetes:\n        namespace: grpcdemo\n        service: greeter\n"
         "        port: grpc\n";
    if (!kubeconfig_path.empty()) y += "        kubeconfig: " + kubeconfig_path + "\n";
    y += "        backoff: {base: 100ms, max: 1s}\n";
    return y;
  }

  void put_slice(const std::string& name, const std::vector<int>& pods) {
    std::vector<Pod> list;
    for (int p : pods) list.push_back(pods_[p]);
    fake_->control("PUT", "/slices/" + name, slice_json(list, pod_port_));
  }

  // The backends that answer `n` calls on a fresh connection.
  std::set<std::string> answering(int n = 16) {
    auto s = stub();
    std::set<std::string> ids;
    for (int i = 0; i < n; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 5s);
      helloworld::HelloRequest req;
      req.set_name("probe");
      helloworld::HelloReply reply;
      if (s->SayHello(&ctx, req, &reply).ok()) ids.insert(backend_of(reply.message()));
    }
    return ids;
  }

  bool answered_by(const std::set<std::string>& want) {
    return eventually([&] { return answering() == want; }, 10s);
  }

  // The endpoint's state in /clusters ("available", "removed", ...), or "" when absent.
  std::string state(int pod) {
    auto [code, body] = http_get(proxy_.admin_port, "/clusters");
    std::smatch m;
    std::regex re("\"address\":\"" +
                  std::regex_replace(address(pod), std::regex(R"(\.)"), R"(\.)") +
                  "\",\"state\":\"([a-z]+)\"");
    return std::regex_search(body, m, re) ? std::string(m[1]) : std::string();
  }
  bool in_rotation(int pod) {
    return eventually([&] { return state(pod) == "available"; }, 10s);
  }
  bool out_of_rotation(int pod) {
    return eventually([&] { return state(pod) != "available"; }, 10s);
  }

  // Calls running now on a pod (GreeterStats on the pod's own address).
  uint64_t in_flight(int pod) {
    auto stats = helloworld::GreeterStats::NewStub(make_channel(address(pod)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    helloworld::StatsRequest req;
    helloworld::StatsReply reply;
    if (!stats->GetStats(&ctx, req, &reply).ok()) return 0;
    return reply.calls() - reply.cancelled() - reply.completed();
  }

  std::string stderr_of_proxy() { return proxy_.process->read_all(Subprocess::Stream::Stderr); }

  std::unique_ptr<FakeApiServer> fake_;
  std::vector<Pod> pods_;
  uint16_t pod_port_ = 0;
};

TEST_F(KubernetesTest, FollowsEveryEndpointChangeWithoutFailingCalls) {
  ASSERT_NO_FATAL_FAILURE(start_pods(4));
  fake_ = std::make_unique<FakeApiServer>(dir_, "test-token");
  put_slice("greeter-abcde", {0, 1});
  start(config(kubeconfig(fake_->ca(), "test-token")));
  ASSERT_TRUE(eventually([&] { return http_get(proxy_.admin_port, "/ready").first == 200; }, 10s))
      << http_get(proxy_.admin_port, "/ready").second << stderr_of_proxy();
  ASSERT_TRUE(answered_by({"greeter-1", "greeter-2"}));

  SteadyClient client(proxy_.target());

  // Scale up: a third pod joins the slice.
  auto t0 = std::chrono::steady_clock::now();
  put_slice("greeter-abcde", {0, 1, 2});
  EXPECT_TRUE(in_rotation(2));
  std::printf("EndpointSlice change reached /clusters in %lld ms (10 ms polling)\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - t0)
                                         .count()));
  EXPECT_TRUE(answered_by({"greeter-1", "greeter-2", "greeter-3"}));

  // A pod fails its readiness probe: no new calls.
  pods_[0].ready = false;
  put_slice("greeter-abcde", {0, 1, 2});
  EXPECT_TRUE(out_of_rotation(0));
  EXPECT_TRUE(answered_by({"greeter-2", "greeter-3"}));

  // A pod is terminating while calls run on it: they finish, new ones go elsewhere.
  SlowCalls slow(*stub(), 4, 1500);
  ASSERT_TRUE(eventually([&] { return in_flight(1) + in_flight(2) == 4; }, 5s));
  EXPECT_GE(in_flight(1), 1u);
  pods_[0].ready = true;  // back from its hiccup
  pods_[1].ready = false;
  pods_[1].terminating = true;
  put_slice("greeter-abcde", {0, 1, 2});
  EXPECT_TRUE(out_of_rotation(1));
  EXPECT_TRUE(in_rotation(0));
  EXPECT_TRUE(answered_by({"greeter-1", "greeter-3"}));
  ASSERT_TRUE(slow.wait(10s));
  std::set<std::string> slow_backends;
  for (size_t i = 0; i < slow.size(); ++i) {
    EXPECT_TRUE(slow.status(i).ok()) << slow.status(i).error_message();
    slow_backends.insert(backend_of(slow.reply(i).message()));
  }
  EXPECT_TRUE(slow_backends.count("greeter-2")) << "no call was in flight on the terminating pod";

  // A second slice of the same Service (the controller splits large Services).
  put_slice("greeter-fghij", {3});
  EXPECT_TRUE(in_rotation(3));
  EXPECT_TRUE(answered_by({"greeter-1", "greeter-3", "greeter-4"}));

  // The first slice goes away: its pods leave, the other slice's stays.
  fake_->control("DELETE", "/slices/greeter-abcde");
  EXPECT_TRUE(out_of_rotation(0));
  EXPECT_TRUE(out_of_rotation(2));
  EXPECT_TRUE(answered_by({"greeter-4"}));

  // History compacted: the watch gets 410 Gone, h2mesh lists again and keeps following.
  fake_->control("POST", "/expire", R"({"mode":"event"})");
  EXPECT_TRUE(eventually([&] { return fake_->stat("lists") == 2; }, 10s)) << stderr_of_proxy();
  put_slice("greeter-abcde", {0});
  EXPECT_TRUE(in_rotation(0));
  EXPECT_TRUE(answered_by({"greeter-1", "greeter-4"}));

  // Calls kept flowing through all of it.
  EXPECT_TRUE(eventually([&] { return client.ok() >= 50; }, 10s));
  client.stop();
  EXPECT_EQ(client.failed(), 0) << client.errors();
  EXPECT_GT(client.ok(), 50);
  EXPECT_EQ(http_get(proxy_.admin_port, "/ready").first, 200);
}

TEST_F(KubernetesTest, WrongTokenIsLoggedAndNotReadyUntilItIsAccepted) {
  ASSERT_NO_FATAL_FAILURE(start_pods(1));
  fake_ = std::make_unique<FakeApiServer>(dir_, "the-real-token");
  put_slice("greeter-abcde", {0});
  start(config(kubeconfig(fake_->ca(), "a-stale-token")));
  const std::string error = "kubernetes: API server rejected the token (401 Unauthorized)";
  EXPECT_TRUE(proxy_.process->wait_for_line(
      Subprocess::Stream::Stderr,
      [&](const std::string& l) { return l.find(error) != std::string::npos; }, 10s))
      << stderr_of_proxy();
  auto [code, body] = http_get(proxy_.admin_port, "/ready");
  EXPECT_EQ(code, 503);
  EXPECT_NE(body.find("not synced"), std::string::npos) << body;
  EXPECT_NE(body.find(error), std::string::npos) << body;

  // The API server comes to accept the token (e.g. RBAC and the account were fixed): h2mesh
  // syncs on its next attempt, without a restart.
  fake_->control("POST", "/token", R"({"token":"a-stale-token"})");
  EXPECT_TRUE(eventually([&] { return http_get(proxy_.admin_port, "/ready").first == 200; }, 10s))
      << http_get(proxy_.admin_port, "/ready").second;
  EXPECT_TRUE(answered_by({"greeter-1"}));
}

TEST_F(KubernetesTest, WrongCaIsLoggedAsTlsVerificationFailureAndNotReady) {
  ASSERT_NO_FATAL_FAILURE(start_pods(1));
  fake_ = std::make_unique<FakeApiServer>(dir_, "test-token");
  put_slice("greeter-abcde", {0});
  start(config(kubeconfig(fake_->other_ca(), "test-token")));
  const std::string error =
      "kubernetes: TLS verification of " + fake_->url() + " failed: certificate verify failed (";
  EXPECT_TRUE(proxy_.process->wait_for_line(
      Subprocess::Stream::Stderr,
      [&](const std::string& l) { return l.find(error) != std::string::npos; }, 10s))
      << stderr_of_proxy();
  auto [code, body] = http_get(proxy_.admin_port, "/ready");
  EXPECT_EQ(code, 503);
  EXPECT_NE(body.find("not synced"), std::string::npos) << body;
  EXPECT_NE(body.find(error), std::string::npos) << body;
  EXPECT_EQ(fake_->stat("lists"), 0);
  // Nothing to call yet: UNAVAILABLE, not a hang.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  helloworld::HelloRequest req;
  helloworld::HelloReply reply;
  EXPECT_EQ(stub()->SayHello(&ctx, req, &reply).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// In a pod: no kubeconfig; the API server from KUBERNETES_SERVICE_HOST/PORT, the token, CA and
// namespace from the service-account directory (moved by H2MESH_SERVICEACCOUNT_DIR for the test).
TEST_F(KubernetesTest, InClusterServiceAccountCredentials) {
  ASSERT_NO_FATAL_FAILURE(start_pods(2));
  fake_ = std::make_unique<FakeApiServer>(dir_, "projected-token");
  put_slice("greeter-abcde", {0, 1});
  std::string sa = dir_ + "/serviceaccount";
  ASSERT_EQ(mkdir(sa.c_str(), 0755), 0);
  std::ofstream(sa + "/token") << "projected-token";
  std::ofstream(sa + "/namespace") << "grpcdemo";
  std::ifstream ca(fake_->ca());
  std::ofstream(sa + "/ca.crt") << ca.rdbuf();
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", fake_->url().substr(fake_->url().rfind(':') + 1).c_str(), 1);
  setenv("H2MESH_SERVICEACCOUNT_DIR", sa.c_str(), 1);
  start(config(""));  // h2mesh inherits the environment
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  unsetenv("H2MESH_SERVICEACCOUNT_DIR");
  EXPECT_TRUE(eventually([&] { return http_get(proxy_.admin_port, "/ready").first == 200; }, 10s))
      << http_get(proxy_.admin_port, "/ready").second << stderr_of_proxy();
  EXPECT_TRUE(answered_by({"greeter-1", "greeter-2"}));
}

}  // namespace
}  // namespace h2mesh_test
