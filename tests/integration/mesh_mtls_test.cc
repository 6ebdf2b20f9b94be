// Mesh mTLS between sidecars (issue 14 part 3), as root in the mesh tests' lab (mesh_fixture.h):
// the client pod's sidecar and sidecars in greeter pods, each with its own certificate from one
// mesh CA (tests/fakes/test_pki.py, or for the wire test also deploy/mesh-certs/
// make-mesh-certs.sh's Secrets). A raw AF_PACKET socket on a greeter pod's eth0 (in the pod's
// network namespace) sees what crosses the pod network; the app in that pod still gets clear text
// from its sidecar over lo. Skipped when not root.

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "mesh_fixture.h"

namespace h2mesh_test::mesh {
namespace {

using namespace std::chrono_literals;

const std::string kGreeterTarget = std::string(kGreeterHost) + ":" + std::to_string(kGrpcPort);
const std::string kClientId = "spiffe://cluster.local/ns/grpcdemo/sa/greeter-client";
// In every reply's protobuf (DATA frames are never compressed): "Hello from greeter-N, ...".
// The method path rides in HPACK, which may Huffman-code it, so it is checked as well but the
// reply text is what proves the capture sees clear text when there is some.
const std::string kReplyText = "Hello from greeter-";
const std::string kMethod = "/helloworld.Greeter/SayHello";

// Every byte of the frames crossing `ifname` of network namespace `netns`, both directions,
// from construction to stop().
class PacketCapture {
 public:
  PacketCapture(const std::string& netns, const std::string& ifname) {
    std::promise<std::string> opened;
    auto ready = opened.get_future();
    thread_ = std::thread([this, netns, ifname, &opened] {
      // setns affects this thread only; the socket stays in the pod's namespace afterwards.
      int ns = ::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
        opened.set_value(std::string("setns: ") + strerror(errno));
        if (ns >= 0) ::close(ns);
        return;
      }
      ::close(ns);
      fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
      sockaddr_ll at{};
      at.sll_family = AF_PACKET;
      at.sll_protocol = htons(ETH_P_ALL);
      at.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
      timeval tick{0, 100000};
      if (fd_ < 0 || at.sll_ifindex == 0 ||
          bind(fd_, reinterpret_cast<sockaddr*>(&at), sizeof(at)) != 0 ||
          setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick)) != 0) {
        opened.set_value(std::string("AF_PACKET on ") + ifname + ": " + strerror(errno));
        return;
      }
      opened.set_value("");
      std::vector<char> frame(65536);
      while (!stop_) {
        ssize_t n = recv(fd_, frame.data(), frame.size(), 0);
        if (n <= 0) continue;  // the 100 ms tick: look at stop_ again
        std::lock_guard<std::mutex> lock(mu_);
        bytes_.append(frame.data(), static_cast<size_t>(n));
      }
    });
    error_ = ready.get();
  }
  ~PacketCapture() { stop(); }
  const std::string& error() const { return error_; }
  std::string stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
  }

 private:
  std::thread thread_;
  std::atomic<bool> stop_{false};
  int fd_ = -1;
  std::string error_;
  std::mutex mu_;
  std::string bytes_;
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Where the sidecars' certificates come from: tests/fakes/test_pki.py (python3-cryptography), or
// what a cluster without cert-manager mounts, deploy/mesh-certs/make-mesh-certs.sh's Secrets.
enum class CertSource { TestPki, MakeMeshCerts };

class MeshMtlsTest : public MeshTest {
 protected:
  void SetUp() override {
    MeshTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    pki_ = dir() + "/pki";
    if (cert_source() == CertSource::MakeMeshCerts) {
      // One Secret per service account: the four greeter pods share greeter's.
      std::vector<std::string> argv = {
          "/usr/bin/python3", std::string(H2MESH_SOURCE_DIR) + "/tests/fakes/mesh_certs_files.py",
          "--script", std::string(H2MESH_SOURCE_DIR) + "/deploy/mesh-certs/make-mesh-certs.sh",
          "--dir", pki_, "greeter-client=grpcdemo/greeter-client"};
      for (int n = 1; n <= 4; ++n)
        argv.push_back("greeter-" + std::to_string(n) + "=grpcdemo/greeter");
      auto r = h2mesh::run_command(argv);
      ASSERT_TRUE(r.ok()) << r.error().message;
      ASSERT_EQ(r->exit_code, 0) << r->err;
      chmod(pki_.c_str(), 0755);
      return;
    }
    ASSERT_NO_FATAL_FAILURE(pki({"ca", "meshca"}));
    ASSERT_NO_FATAL_FAILURE(leaf("greeter-client", kClientId));
    for (int n = 1; n <= 4; ++n)
      ASSERT_NO_FATAL_FAILURE(
          leaf("greeter-" + std::to_string(n), "spiffe://cluster.local/ns/grpcdemo/sa/greeter"));
    ASSERT_NO_FATAL_FAILURE(leaf("stranger", "spiffe://other.example/ns/x/sa/y"));
  }
  virtual CertSource cert_source() const { return CertSource::TestPki; }

  void pki(std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/python3", std::string(H2MESH_SOURCE_DIR) +
                                                             "/tests/fakes/test_pki.py",
                                     "--dir", pki_};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = h2mesh::run_command(argv);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->exit_code, 0) << r->err;
  }
  void leaf(const std::string& name, const std::string& uri) {
    ASSERT_NO_FATAL_FAILURE(pki({"leaf", "--ca", "meshca", "--uri", uri, "--server", "--client",
                                 name}));
    // The sidecars run as uid 1337 and read them.
    chmod((pki_ + "/" + name + ".key").c_str(), 0644);
    chmod(pki_.c_str(), 0755);
  }
  // The mesh.tls block of a sidecar holding `name`'s certificate.
  std::string mesh_tls(const std::string& name, const std::string& extra = "") const {
    return "mesh:\n  tls:\n    cert: " + pki_ + "/" + name + ".crt\n    key: " + pki_ + "/" +
           name + ".key\n    ca: " + pki_ + "/meshca.crt\n" + extra;
  }

  // A sidecar in greeter pod `n`, as the injector sets one up: `iptables install --inbound-port
  // 15006` as root, then `h2mesh run --mesh` as uid 1337 with the pod's certificate. It needs
  // no API server for the inbound side (the kubeconfig's server, the client pod's loopback, is
  // unreachable from here: it only logs that).
  void start_pod_sidecar(int n, const std::string& extra = "") {
    const h2mesh::lab::Pod& pod = greeter_pod(n);
    auto installed = lab().run(&pod, {bin_dir() + "/h2mesh", "iptables", "install",
                                      "--inbound-port", "15006"});
    ASSERT_TRUE(installed.ok()) << installed.error().message;
    const std::string config = dir() + "/sidecar-greeter-" + std::to_string(n) + ".yaml";
    std::ofstream(config) << mesh_tls("greeter-" + std::to_string(n), extra);
    chmod(config.c_str(), 0644);
    auto p = spawn_in(pod,
                      {bin_dir() + "/h2mesh", "run", "--mesh", "--config", config, "--kubeconfig",
                       kubeconfig(), "--admin", "127.0.0.1:15000"},
                      "sidecar-greeter-" + std::to_string(n), kSidecarUid);
    ASSERT_TRUE(p);
    auto line = p->wait_for_line(
        h2mesh::Subprocess::Stream::Stderr,
        [](const std::string& l) { return l.find("mesh: inbound listener on") != std::string::npos; },
        kStartTimeout);
    ASSERT_TRUE(line.has_value()) << p->read_all(h2mesh::Subprocess::Stream::Stderr);
    ASSERT_TRUE(p->wait_for_line(
                    h2mesh::Subprocess::Stream::Stderr,
                    [](const std::string& l) {
                      return l.find("admin listening on") != std::string::npos;
                    },
                    kStartTimeout)
                    .has_value());
    pod_sidecars_[n] = std::move(p);
  }
  std::optional<uint64_t> pod_metric(int n, const std::string& series) {
    auto reply =
        h2mesh::lab::http_get_in(greeter_pod(n).netns, "127.0.0.1", 15000, "/metrics", 10000);
    EXPECT_TRUE(reply.ok()) << (reply.ok() ? "" : reply.error().message);
    if (!reply.ok()) return std::nullopt;
    return metric_in(reply->body, series);
  }
  std::string pod_sidecar_log(int n) {
    auto it = pod_sidecars_.find(n);
    return it == pod_sidecars_.end() ? ""
                                     : it->second->read_all(h2mesh::Subprocess::Stream::Stderr);
  }

  std::string pki_;
  std::map<int, std::unique_ptr<h2mesh::Subprocess>> pod_sidecars_;
};

// The wire test with each source of certificates.
class MeshMtlsCertSourceTest : public MeshMtlsTest,
                               public ::testing::WithParamInterface<CertSource> {
 protected:
  CertSource cert_source() const override { return GetParam(); }
};

TEST_P(MeshMtlsCertSourceTest, SidecarsTalkMtlsOnTheWireAndPodsWithoutOneStillAnswerInClearText) {
  ASSERT_NO_FATAL_FAILURE(start_pod_sidecar(1));
  ASSERT_NO_FATAL_FAILURE(start_pod_sidecar(2));
  ASSERT_NO_FATAL_FAILURE(start_sidecar({}, mesh_tls("greeter-client")));
  PacketCapture meshed(greeter_pod(1).netns, "eth0");
  ASSERT_EQ(meshed.error(), "");
  PacketCapture plain(greeter_pod(3).netns, "eth0");
  ASSERT_EQ(plain.error(), "");

  constexpr int kCalls = 24;
  CallCounts calls = greeter_call(kGreeterTarget, kCalls);
  expect_spread(calls, kCalls, {1, 2, 3, 4});
  const std::string to_meshed = meshed.stop(), to_plain = plain.stop();

  // Between the sidecars: TLS records only, though the app behind greeter-1's sidecar answered.
  EXPECT_GT(calls.per_pod["greeter-1"], 0) << calls.output;
  EXPECT_GT(to_meshed.size(), 1000u) << "the capture saw the calls' packets";
  EXPECT_FALSE(contains(to_meshed, kReplyText)) << "a reply crossed the pod network in clear";
  EXPECT_FALSE(contains(to_meshed, kMethod));
  // The control: greeter-3 has no sidecar, so the client's sidecar fell back to clear text, and
  // the same capture does see it (a capture that saw nothing would pass the check above).
  EXPECT_GT(calls.per_pod["greeter-3"], 0) << calls.output;
  EXPECT_TRUE(contains(to_plain, kReplyText)) << "the control capture saw no clear text";

  // The server side knows who called: the client's SPIFFE ID, per call.
  const uint64_t by_client =
      pod_metric(1, "h2mesh_inbound_calls_total{identity=\"" + kClientId + "\"}").value_or(0) +
      pod_metric(2, "h2mesh_inbound_calls_total{identity=\"" + kClientId + "\"}").value_or(0);
  EXPECT_EQ(by_client, static_cast<uint64_t>(calls.per_pod["greeter-1"] +
                                             calls.per_pod["greeter-2"]))
      << pod_sidecar_log(1);
  EXPECT_EQ(pod_metric(1, "h2mesh_inbound_calls_total{identity=\"plaintext\"}"), std::nullopt);
  // The client side: two endpoints over mTLS, two that fell back (and are remembered).
  EXPECT_GE(metric("h2mesh_mesh_originations_total{outcome=\"mtls\"}").value_or(0), 2u);
  EXPECT_GE(metric("h2mesh_mesh_originations_total{outcome=\"plaintext_fallback\"}").value_or(0),
            2u)
      << sidecar_log();
}

INSTANTIATE_TEST_SUITE_P(CertSources, MeshMtlsCertSourceTest,
                         ::testing::Values(CertSource::TestPki, CertSource::MakeMeshCerts),
                         [](const ::testing::TestParamInfo<CertSource>& info) {
                           return info.param == CertSource::TestPki ? "test_pki"
                                                                    : "make_mesh_certs";
                         });

TEST_F(MeshMtlsTest, AllowListRefusesOtherIdentitiesWithPermissionDenied) {
  ASSERT_NO_FATAL_FAILURE(
      start_pod_sidecar(1, "    allowed_identities: [spiffe://cluster.local/ns/grpcdemo/sa/x]\n"));
  publish_greeters({1});
  ASSERT_NO_FATAL_FAILURE(start_sidecar({}, mesh_tls("greeter-client")));
  CallCounts calls = greeter_call(kGreeterTarget, 4);
  EXPECT_EQ(calls.ok, 0) << calls.output;
  EXPECT_TRUE(contains(calls.output, "PERMISSION_DENIED") || contains(calls.output, "code 7") ||
              contains(calls.output, "status 7"))
      << calls.output;
  EXPECT_EQ(pod_metric(1, "h2mesh_authz_denied_total{listener=\"mesh-inbound\"}"),
            std::optional<uint64_t>(4));
}

TEST_F(MeshMtlsTest, StrictRefusesClearTextAndPermissiveAcceptsIt) {
  ASSERT_NO_FATAL_FAILURE(start_pod_sidecar(1, "    mode: strict\n"));
  ASSERT_NO_FATAL_FAILURE(start_pod_sidecar(2));
  publish_greeters({1, 2});
  // A client sidecar without mesh mTLS speaks clear text to both.
  ASSERT_NO_FATAL_FAILURE(start_sidecar());
  CallCounts calls = greeter_call(kGreeterTarget, 8);
  EXPECT_EQ(calls.per_pod["greeter-1"], 0) << calls.output;
  EXPECT_GT(calls.per_pod["greeter-2"], 0) << calls.output;
  EXPECT_GE(pod_metric(1, "h2mesh_inbound_connections_total{outcome=\"plaintext_refused\"}")
                .value_or(0),
            1u)
      << pod_sidecar_log(1);
  EXPECT_EQ(pod_metric(2, "h2mesh_inbound_calls_total{identity=\"plaintext\"}"),
            std::optional<uint64_t>(calls.per_pod["greeter-2"]));
}

TEST_F(MeshMtlsTest, PeerOutsideTheTrustDomainIsNotCalledNorFallenBackTo) {
  // greeter-1's sidecar has a certificate of the mesh CA, but the client's sidecar expects
  // another trust domain: a verified TLS peer it must not call, and never in clear text either.
  ASSERT_NO_FATAL_FAILURE(start_pod_sidecar(1));
  publish_greeters({1});
  ASSERT_NO_FATAL_FAILURE(
      start_sidecar({}, mesh_tls("greeter-client", "    trust_domain: other.example\n")));
  CallCounts calls = greeter_call(kGreeterTarget, 2);
  EXPECT_EQ(calls.ok, 0) << calls.output;
  EXPECT_GE(metric("h2mesh_mesh_originations_total{outcome=\"wrong_trust_domain\"}").value_or(0),
            1u);
  EXPECT_EQ(metric("h2mesh_mesh_originations_total{outcome=\"plaintext_fallback\"}"),
            std::optional<uint64_t>(0));
}

}  // namespace
}  // namespace h2mesh_test::mesh
