// The Kubernetes resolver against a fake API server speaking the real wire format over HTTPS on
// loopback (tests/fakes/fake_kube_apiserver.py, certificates made at test time by openssl):
// list then watch, every kind of change, bookmarks, cut watches, 410 Gone in both forms, token
// rotation, and the errors an operator must be able to read (401, 403, wrong CA, refused).
//
// Everything runs on one net::EventLoop in the test thread. A Script runs steps in order inside a
// single loop.run(): each step does something (scripting the fake through its control port, a
// short blocking HTTP call to another process), then waits, polled by a 1 ms timer, until its
// condition holds; a step that takes too long fails the test.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "cluster/host_set.h"
#include "config/config.h"
#include "discovery/resolver.h"
#include "fakes/fake_kube_apiserver.h"
#include "fakes/loop_script.h"
#include "net/event_loop.h"

namespace h2mesh::discovery {
namespace {

using Script = h2mesh_test_fakes::LoopScript;

using namespace std::chrono_literals;
using Endpoints = std::vector<cluster::DiscoveredEndpoint>;


using FakeApiServer = h2mesh_test_fakes::FakeKubeApiServer;

// JSON of one endpoint for a slice.
std::string ep(const std::string& ip, const std::string& pod, bool ready = true,
               bool terminating = false, const std::string& zone = "zone-a") {
  return R"({"addresses":[")" + ip + R"("],"conditions":{"ready":)" + (ready ? "true" : "false") +
         R"(,"serving":true,"terminating":)" + (terminating ? "true" : "false") +
         R"(},"targetRef":{"kind":"Pod","namespace":"grpcdemo","name":")" + pod + R"("},"zone":")" +
         zone + R"("})";
}

std::string slice(const std::vector<std::string>& endpoints, int port = 50051,
                  const std::string& extra_ports = "") {
  std::string eps;
  for (const auto& e : endpoints) eps += (eps.empty() ? "" : ",") + e;
  return R"({"addressType":"IPv4","endpoints":[)" + eps +
         R"(],"ports":[{"name":"grpc","protocol":"TCP","port":)" + std::to_string(port) + "}" +
         extra_ports + "]}";
}

// "address ready|notready [terminating]" per endpoint, for readable comparisons.
std::vector<std::string> describe(const Endpoints& eps) {
  std::vector<std::string> out;
  for (const auto& e : eps)
    out.push_back(e.address.to_string() + (e.ready ? " ready" : " notready") +
                  (e.terminating ? " terminating" : ""));
  return out;
}

// ---- fixture ---------------------------------------------------------------------------------

class K8sResolverTest : public ::testing::Test {
 protected:
  K8sResolverTest() {
    char tmpl[] = "/tmp/h2mesh-k8s-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~K8sResolverTest() override {
    resolver_.reset();
    loop_.run_deferred();
    fake_.reset();
    std::filesystem::remove_all(dir_);
  }

  FakeApiServer& start_fake(std::vector<std::string> flags = {}) {
    fake_ = std::make_unique<FakeApiServer>(dir_, std::move(flags));
    return *fake_;
  }

  // Writes a kubeconfig; `user` is the YAML of the user entry's map.
  std::string kubeconfig(const std::string& server, const std::string& ca_path,
                         const std::string& user, const std::string& extra_cluster = "") {
    std::string path = dir_ + "/kubeconfig-" + std::to_string(++configs_);
    std::ofstream(path) << "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
                        << "    server: " << server << "\n    certificate-authority: " << ca_path
                        << "\n"
                        << extra_cluster << "users:\n- name: u\n  user:\n    " << user
                        << "\ncontexts:\n- name: c\n  context: {cluster: fake, user: u, "
                        << "namespace: grpcdemo}\ncurrent-context: c\n";
    return path;
  }
  std::string token_kubeconfig(const std::string& token = "test-token") {
    return kubeconfig(fake_->url(), fake_->ca(), "token: " + token);
  }

  void make_resolver(const std::string& kubeconfig_path, const std::string& port = "grpc") {
    config::Cluster c;
    c.name = "greeter";
    c.discovery.type = config::DiscoveryType::Kubernetes;
    c.discovery.kubernetes.service = "greeter";
    c.discovery.kubernetes.port = port;
    c.discovery.kubernetes.kubeconfig = kubeconfig_path;
    c.discovery.kubernetes.backoff_base = config::Millis(20);
    c.discovery.kubernetes.backoff_max = config::Millis(200);
    resolver_ = make_kubernetes_resolver(
        loop_, c, [this](Endpoints eps) { updates_.push_back(std::move(eps)); });
  }

  // Step helpers.
  std::function<void()> start() {
    return [this] { resolver_->start(); };
  }
  std::function<bool()> last_update_is(std::vector<std::string> want) {
    return [this, want] { return !updates_.empty() && describe(updates_.back()) == want; };
  }
  std::function<bool()> error_contains(std::string text) {
    return [this, text] { return resolver_->last_error().find(text) != std::string::npos; };
  }

  std::string dir_;
  net::EventLoop loop_;
  std::unique_ptr<FakeApiServer> fake_;
  std::unique_ptr<Resolver> resolver_;
  std::vector<Endpoints> updates_;
  int configs_ = 0;
};

const std::vector<std::string> kTwo = {"10.244.1.10:50051 ready", "10.244.1.11:50051 ready"};

TEST_F(K8sResolverTest, ListThenWatchFollowsEveryKindOfChange) {
  auto& fake = start_fake();
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  make_resolver(token_kubeconfig());
  EXPECT_FALSE(resolver_->synced());
  std::string failed =
      Script(loop_)
          .step("sync", start(), last_update_is(kTwo))
          .wait("watching", [&] { return fake.stat("open_watches") == 1; })
          .step(
              "add an endpoint",
              [&] {
                EXPECT_TRUE(resolver_->synced());
                EXPECT_EQ(resolver_->last_error(), "");
                fake.put_slice("greeter-a",
                               slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1"),
                                      ep("10.244.1.12", "pod-2")}));
              },
              last_update_is({"10.244.1.10:50051 ready", "10.244.1.11:50051 ready",
                              "10.244.1.12:50051 ready"}))
          .step(
              "mark one not ready",
              [&] {
                fake.put_slice("greeter-a",
                               slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1", false),
                                      ep("10.244.1.12", "pod-2")}));
              },
              last_update_is({"10.244.1.10:50051 ready", "10.244.1.11:50051 notready",
                              "10.244.1.12:50051 ready"}))
          .step(
              "mark one terminating",
              [&] {
                fake.put_slice("greeter-a",
                               slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1", false),
                                      ep("10.244.1.12", "pod-2", false, true)}));
              },
              last_update_is({"10.244.1.10:50051 ready", "10.244.1.11:50051 notready",
                              "10.244.1.12:50051 notready terminating"}))
          .step(
              "a second slice",
              [&] { fake.put_slice("greeter-b", slice({ep("10.244.2.20", "pod-3")})); },
              last_update_is({"10.244.1.10:50051 ready", "10.244.1.11:50051 notready",
                              "10.244.1.12:50051 notready terminating", "10.244.2.20:50051 ready"}))
          .step(
              "a slice of another service is not ours",
              [&] {
                fake.put_slice("other-x",
                               R"({"service":"other","endpoints":[{"addresses":["10.9.9.9"]}],)"
                               R"("ports":[{"name":"grpc","port":1}]})");
                fake.delete_slice("greeter-a");
              },
              last_update_is({"10.244.2.20:50051 ready"}))
          .step(
              "the slice empties", [&] { fake.put_slice("greeter-b", slice({})); },
              last_update_is({}))
          .run();
  EXPECT_EQ(failed, "");
  EXPECT_EQ(fake.stat("lists"), 1);
  EXPECT_EQ(fake.stat("watches"), 1);
  // One update per change: nothing redundant.
  EXPECT_EQ(updates_.size(), 7u);
  ASSERT_FALSE(updates_.empty());
}

TEST_F(K8sResolverTest, NamedPortZoneAndPodNameReachTheEndpoints) {
  auto& fake = start_fake();
  fake.put_slice("greeter-a",
                 slice({ep("10.244.1.10", "greeter-server-kx9pt", true, false, "zone-b")}, 9090,
                       R"(,{"name":"metrics","port":9100})"));
  make_resolver(token_kubeconfig(), "metrics");
  std::string failed = Script(loop_).step("sync", start(), [&] { return !updates_.empty(); }).run();
  ASSERT_EQ(failed, "");
  ASSERT_EQ(updates_.back().size(), 1u);
  const auto& e = updates_.back()[0];
  EXPECT_EQ(e.address.to_string(), "10.244.1.10:9100");
  EXPECT_EQ(e.zone, "zone-b");
  EXPECT_EQ(e.name, "greeter-server-kx9pt");
  EXPECT_TRUE(e.ready);
}

TEST_F(K8sResolverTest, CutWatchResumesFromTheLastBookmarkWithoutListing) {
  auto& fake = start_fake();
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  make_resolver(token_kubeconfig());
  std::string rv;
  std::string failed =
      Script(loop_)
          .step("sync", start(), last_update_is(kTwo))
          .wait("watching", [&] { return fake.stat("open_watches") == 1; })
          .step(
              "unrelated change, then a bookmark",
              [&] {
                fake.put_slice("other-x", R"({"service":"other","endpoints":null,"ports":null})");
                rv = fake.current_rv();
                fake.control("POST", "/bookmark");
              },
              [&] { return fake.stat("bookmarks_sent") == 1; })
          .step(
              "cut the watch", [&] { fake.control("POST", "/drop-watches"); },
              [&] { return fake.stat("watches") == 2 && fake.stat("open_watches") == 1; })
          .step(
              "a change after the cut arrives",
              [&] { fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0")})); },
              last_update_is({"10.244.1.10:50051 ready"}))
          .run();
  EXPECT_EQ(failed, "");
  EXPECT_EQ(fake.stat("lists"), 1);
  // The re-watch asked for the bookmark's resourceVersion (past the last event it had seen).
  EXPECT_EQ(fake.last_watch_rv(), rv) << fake.stats();
  EXPECT_TRUE(resolver_->synced());
}

TEST_F(K8sResolverTest, GoneErrorEventRelistsAndKeepsEndpointsMeanwhile) {
  auto& fake = start_fake();
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  make_resolver(token_kubeconfig());
  size_t updates_at_expiry = 0;
  std::string failed =
      Script(loop_)
          .step("sync", start(), last_update_is(kTwo))
          .wait("watching", [&] { return fake.stat("open_watches") == 1; })
          .step(
              "410 as an ERROR event",
              [&] {
                updates_at_expiry = updates_.size();
                fake.control("POST", "/expire", R"({"mode":"event"})");
              },
              [&] { return fake.stat("lists") == 2 && fake.stat("open_watches") == 1; })
          .step(
              "changes are followed after the relist",
              [&] { fake.put_slice("greeter-a", slice({ep("10.244.1.11", "pod-1")})); },
              last_update_is({"10.244.1.11:50051 ready"}))
          .run();
  EXPECT_EQ(failed, "");
  EXPECT_EQ(fake.stat("gone"), 1);
  // Between the 410 and the new list nothing was taken away; the relist reported the same set.
  ASSERT_GE(updates_.size(), updates_at_expiry + 2);
  for (size_t i = updates_at_expiry; i + 1 < updates_.size(); ++i)
    EXPECT_EQ(describe(updates_[i]), kTwo);
}

TEST_F(K8sResolverTest, GoneHttpReplyRelists) {
  auto& fake = start_fake();
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  make_resolver(token_kubeconfig());
  std::string failed =
      Script(loop_)
          .step("sync", start(), last_update_is(kTwo))
          .wait("watching", [&] { return fake.stat("open_watches") == 1; })
          .step(
              "watch cut, then HTTP 410 on the re-watch",
              [&] { fake.control("POST", "/expire", R"({"mode":"http"})"); },
              [&] { return fake.stat("lists") == 2 && fake.stat("open_watches") == 1; })
          .step(
              "changes are followed after the relist", [&] { fake.delete_slice("greeter-a"); },
              last_update_is({}))
          .run();
  EXPECT_EQ(failed, "");
  EXPECT_EQ(fake.stat("gone"), 1);
}

TEST_F(K8sResolverTest, WatchesEndedByTheServerAreResumed) {
  auto& fake = start_fake({"--max-watch-seconds", "1.2", "--bookmark-interval", "0.3"});
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  make_resolver(token_kubeconfig());
  std::string failed =
      Script(loop_)
          .step("sync", start(), last_update_is(kTwo))
          .wait("three watches", [&] { return fake.stat("watches") >= 3; })
          .step(
              "still following", [&] { fake.delete_slice("greeter-a"); }, last_update_is({}))
          .run();
  EXPECT_EQ(failed, "");
  EXPECT_EQ(fake.stat("lists"), 1);
  EXPECT_EQ(fake.stat("gone"), 0);
  EXPECT_EQ(resolver_->last_error(), "");
}

TEST_F(K8sResolverTest, WrongTokenIsAClearErrorAndNeverSyncs) {
  auto& fake = start_fake();
  make_resolver(token_kubeconfig("wrong-token"));
  std::string failed =
      Script(loop_)
          .step("401", start(),
                error_contains("kubernetes: API server rejected the token (401 Unauthorized)"))
          .wait("retried with backoff", [&] { return fake.stat("unauthorized") >= 3; })
          .run();
  EXPECT_EQ(failed, "");
  EXPECT_FALSE(resolver_->synced());
  EXPECT_TRUE(updates_.empty());
}

TEST_F(K8sResolverTest, ForbiddenIsAClearError) {
  auto& fake = start_fake();
  fake.control("POST", "/forbid", R"({"forbid":true})");
  make_resolver(token_kubeconfig());
  std::string failed =
      Script(loop_)
          .step("403", start(),
                error_contains("kubernetes: API server denied access (403 Forbidden)"))
          .step(
              "RBAC fixed", [&] { fake.control("POST", "/forbid", R"({"forbid":false})"); },
              [&] { return resolver_->synced(); })
          .run();
  EXPECT_EQ(failed, "");
  EXPECT_EQ(resolver_->last_error(), "");
}

TEST_F(K8sResolverTest, WrongCaIsATlsVerificationError) {
  auto& fake = start_fake();
  make_resolver(kubeconfig(fake.url(), fake.dir() + "/other-ca.crt", "token: test-token"));
  std::string failed = Script(loop_)
                           .step("verify", start(),
                                 error_contains("kubernetes: TLS verification of " + fake.url() +
                                                " failed: certificate verify failed ("))
                           .run();
  EXPECT_EQ(failed, "") << resolver_->last_error();
  EXPECT_FALSE(resolver_->synced());
  EXPECT_EQ(fake.stat("lists"), 0);
}

TEST_F(K8sResolverTest, CertificateForAnotherNameIsRejected) {
  auto& fake = start_fake();
  make_resolver(kubeconfig(fake.url(), fake.ca(), "token: test-token",
                           "    tls-server-name: kubernetes.default.svc\n"));
  std::string failed =
      Script(loop_)
          .step("verify", start(), error_contains("certificate verify failed (hostname mismatch)"))
          .run();
  EXPECT_EQ(failed, "") << resolver_->last_error();
}

TEST_F(K8sResolverTest, ConnectionRefusedIsAClearErrorAndRecoveryFollows) {
  // A port nobody listens on: bind one, note it, close it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  std::string url = "https://127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  auto& fake = start_fake();  // for its CA only
  make_resolver(kubeconfig(url, fake.ca(), "token: test-token"));
  std::string failed = Script(loop_)
                           .step("refused", start(),
                                 error_contains("kubernetes: cannot connect to the API server " +
                                                url + ": connect: Connection refused"))
                           .run();
  EXPECT_EQ(failed, "") << resolver_->last_error();
  EXPECT_FALSE(resolver_->synced());
}

TEST_F(K8sResolverTest, ApiServerGoneKeepsTheLastEndpoints) {
  auto& fake = start_fake();
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  make_resolver(token_kubeconfig());
  std::string failed = Script(loop_)
                           .step("sync", start(), last_update_is(kTwo))
                           .step(
                               "the API server dies", [&] { fake.stop(); },
                               error_contains("kubernetes: cannot connect to the API server"))
                           .run();
  EXPECT_EQ(failed, "") << resolver_->last_error();
  EXPECT_TRUE(resolver_->synced());  // the last known set stays in use
  EXPECT_EQ(updates_.size(), 1u);
}

TEST_F(K8sResolverTest, ClientCertificateWithoutToken) {
  auto& fake = start_fake();
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  make_resolver(kubeconfig(fake.url(), fake.ca(),
                           "{client-certificate: " + fake.dir() +
                               "/client.crt, client-key: " + fake.dir() + "/client.key}"));
  std::string failed = Script(loop_).step("sync", start(), last_update_is(kTwo)).run();
  EXPECT_EQ(failed, "") << resolver_->last_error();
  EXPECT_EQ(fake.stat("unauthorized"), 0);
}

// kubectl proxy beside h2mesh: an http:// server, no TLS, no CA; the token (if the kubeconfig
// has one) is still sent.
TEST_F(K8sResolverTest, PlainHttpServerOfTheKubeconfig) {
  auto& fake = start_fake({"--http"});
  ASSERT_EQ(fake.url().rfind("http://", 0), 0u) << fake.url();
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  std::string path = dir_ + "/kubeconfig-proxy";
  std::ofstream(path) << "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster:\n"
                      << "    server: " << fake.url() << "\nusers:\n- name: u\n  user:\n"
                      << "    token: test-token\ncontexts:\n- name: c\n  context: "
                      << "{cluster: proxy, user: u, namespace: grpcdemo}\ncurrent-context: c\n";
  make_resolver(path);
  std::string failed =
      Script(loop_)
          .step("sync", start(), last_update_is(kTwo))
          .wait("watching", [&] { return fake.stat("open_watches") == 1; })
          .step(
              "follows a change", [&] { fake.delete_slice("greeter-a"); }, last_update_is({}))
          .run();
  EXPECT_EQ(failed, "") << resolver_->last_error();
  EXPECT_EQ(fake.stat("lists"), 1);
  EXPECT_EQ(fake.stat("unauthorized"), 0);
}

TEST_F(K8sResolverTest, HostNameIsLookedUpAndVerified) {
#ifdef __SANITIZE_THREAD__
  // getaddrinfo_a runs the lookup on a thread glibc starts internally, which ThreadSanitizer does
  // not intercept: its first malloc there crashes inside TSan's allocator. Not our code's race;
  // the normal and ASan builds run this test.
  GTEST_SKIP() << "getaddrinfo_a's internal thread is not supported by ThreadSanitizer";
#endif
  auto& fake = start_fake();
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  // localhost may resolve to ::1 first, where nothing listens: the next address is tried.
  make_resolver(kubeconfig("https://localhost:" + std::to_string(fake.port()), fake.ca(),
                           "token: test-token"));
  std::string failed = Script(loop_).step("sync", start(), last_update_is(kTwo)).run();
  EXPECT_EQ(failed, "") << resolver_->last_error();
}

// In-cluster credentials (KUBERNETES_SERVICE_HOST/PORT and the service-account directory): a
// rotated token file is used by the next connection, and a 401 recovers once the file is right.
TEST_F(K8sResolverTest, InClusterTokenRotationIsPickedUp) {
  auto& fake = start_fake({"--token", "token-1"});
  fake.put_slice("greeter-a", slice({ep("10.244.1.10", "pod-0"), ep("10.244.1.11", "pod-1")}));
  std::string sa = dir_ + "/serviceaccount";
  std::filesystem::create_directories(sa);
  std::filesystem::copy_file(fake.ca(), sa + "/ca.crt");
  std::ofstream(sa + "/namespace") << "grpcdemo";
  auto write_token = [&](const std::string& t) {
    std::ofstream(sa + "/token.tmp") << t << "\n";
    std::filesystem::rename(sa + "/token.tmp", sa + "/token");  // a new inode, like the kubelet
  };
  write_token("token-1");
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", std::to_string(fake.port()).c_str(), 1);
  setenv("H2MESH_SERVICEACCOUNT_DIR", sa.c_str(), 1);
  make_resolver("");
  auto last_token = [&] {
    std::smatch m;
    std::string s = fake.stats();
    return std::regex_search(s, m, std::regex(R"re("tokens":\[(?:"[^"]*",)*"([^"]*)"\])re"))
               ? std::string(m[1])
               : std::string();
  };
  std::string failed =
      Script(loop_)
          .step("sync", start(), last_update_is(kTwo))
          .wait("watching", [&] { return fake.stat("open_watches") == 1; })
          .step(
              "rotate, then reconnect",
              [&] {
                fake.control("POST", "/token", R"({"token":"token-2"})");
                write_token("token-2");
                fake.control("POST", "/drop-watches");
              },
              [&] { return fake.stat("watches") == 2 && last_token() == "token-2"; })
          .step(
              "the server moves on first: 401",
              [&] {
                fake.control("POST", "/token", R"({"token":"token-3"})");
                fake.control("POST", "/drop-watches");
              },
              error_contains("rejected the token (401 Unauthorized) read from " + sa + "/token"))
          .step(
              "the file catches up", [&] { write_token("token-3"); },
              [&] { return fake.stat("open_watches") == 1 && resolver_->last_error().empty(); })
          .run();
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  unsetenv("H2MESH_SERVICEACCOUNT_DIR");
  EXPECT_EQ(failed, "") << resolver_->last_error() << "\n" << fake.stats();
  EXPECT_EQ(fake.stat("lists"), 1);
  EXPECT_TRUE(resolver_->synced());
}

}  // namespace
}  // namespace h2mesh::discovery
