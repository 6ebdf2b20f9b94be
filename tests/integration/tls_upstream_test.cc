// Upstream TLS (clusters[].tls) against real TLS backends: the greeter with gRPC's SSL server
// credentials and a Python grpcio server. A clear-text client calls h2mesh, which originates TLS:
// balancing per call, mTLS, each verification failure (UNAVAILABLE, a log line and the
// h2mesh_upstream_tls_handshakes_total counter), session resumption and certificate rotation.

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "harness.h"

namespace h2mesh_test {
namespace {

const char* kGreeterUri = "spiffe://cluster.local/ns/grpcdemo/sa/greeter";

class TlsUpstreamTest : public ProxyTest {
 protected:
  void SetUp() override {
    pki("ca ca");
    pki("ca other-ca");
    pki("leaf server --ca ca --server --ip 127.0.0.1 --dns greeter.internal --uri " +
        std::string(kGreeterUri));
    pki("leaf expired --ca ca --server --ip 127.0.0.1 --dns greeter.internal --expired");
    pki("leaf stranger --ca other-ca --server --ip 127.0.0.1 --dns greeter.internal");
    pki("leaf client --ca ca --client --days 30 --uri "
        "spiffe://cluster.local/ns/grpcdemo/sa/h2mesh");
  }

  // tests/fakes/test_pki.py with `args`, writing into the test's directory.
  void pki(const std::string& args) {
    const std::string cmd = "/usr/bin/python3 " + std::string(H2MESH_SOURCE_DIR) +
                            "/tests/fakes/test_pki.py --dir " + dir_ + " " + args + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

  // A greeter serving TLS with dir/NAME.crt and NAME.key.
  Backend tls_backend(const std::string& id, const std::string& cert, uint16_t port = 0,
                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--tls-cert", file(cert + ".crt"), "--tls-key",
                                     file(cert + ".key")};
    args.insert(args.end(), extra.begin(), extra.end());
    return start_backend(dir_, id, port, args);
  }

  // tests/fakes/tls_backend.py in `mode` (grpc or no-alpn).
  Backend python_backend(const std::string& mode, const std::string& id, const std::string& cert) {
    Backend b;
    b.id = id;
    auto p = Subprocess::spawn(
        {"/usr/bin/python3", std::string(H2MESH_SOURCE_DIR) + "/tests/fakes/tls_backend.py", mode,
         "--cert", file(cert + ".crt"), "--key", file(cert + ".key"), "--id", id},
        dir_, id);
    EXPECT_TRUE(p.ok());
    if (!p.ok()) return b;
    b.process = std::move(*p);
    auto line = b.process->wait_for_line(
        Subprocess::Stream::Stdout,
        [](const std::string& l) { return l.find(" listening on ") != std::string::npos; },
        kStartTimeout);
    std::smatch m;
    static const std::regex port_re(R"(:(\d+)\s*$)");
    EXPECT_TRUE(line && std::regex_search(*line, m, port_re))
        << id << " did not start: " << b.process->read_all(Subprocess::Stream::Stderr);
    if (line && std::regex_search(*line, m, port_re))
      b.port = static_cast<uint16_t>(std::stoi(m[1]));
    return b;
  }

  // One worker, so that every connection shares one session cache and one set of counters.
  std::string config(const std::string& tls_yaml, const std::string& extra = "") {
    return simple_config(endpoints(), "round_robin", 1, extra + "    tls:\n" + tls_yaml);
  }

  grpc::Status call(std::string* backend = nullptr) {
    auto s = stub();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    helloworld::HelloRequest req;
    req.set_name("tls");
    helloworld::HelloReply reply;
    grpc::Status st = s->SayHello(&ctx, req, &reply);
    if (backend) *backend = backend_of(reply.message());
    return st;
  }

  uint64_t handshakes(const std::string& result) {
    auto [code, metrics] = http_get(proxy_.admin_port, "/metrics");
    std::regex re("h2mesh_upstream_tls_handshakes_total\\{cluster=\"greeter\",result=\"" + result +
                  "\"\\} (\\d+)");
    std::smatch m;
    if (code != 200 || !std::regex_search(metrics, m, re)) return UINT64_MAX;
    return std::stoull(m[1]);
  }

  uint64_t upstream_connections() {
    auto [code, metrics] = http_get(proxy_.admin_port, "/metrics");
    std::regex re(
        "h2mesh_endpoint_upstream_connections_active\\{cluster=\"greeter\",endpoint=\"[^\"]+\"\\} (\\d+)");
    std::smatch m;
    if (code != 200 || !std::regex_search(metrics, m, re)) return UINT64_MAX;
    return std::stoull(m[1]);
  }

  std::string proxy_log() {
    return proxy_.process->read_all(Subprocess::Stream::Stdout) +
           proxy_.process->read_all(Subprocess::Stream::Stderr);
  }

  // A failed handshake: the call fails UNAVAILABLE, the log says why, the counter moves.
  void expect_refused(const std::string& result, const std::string& log_text) {
    grpc::Status st = call();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_TRUE(eventually([&] { return proxy_log().find(log_text) != std::string::npos; },
                           std::chrono::seconds(5)))
        << "no log line with '" << log_text << "' in:\n"
        << proxy_log();
    EXPECT_GE(handshakes(result), 1u) << result;
    EXPECT_EQ(handshakes("ok"), 0u);
  }
};

TEST_F(TlsUpstreamTest, BalancesEachCallOverFourTlsBackends) {
  for (int i = 1; i <= 4; ++i)
    backends_.push_back(tls_backend("greeter-" + std::to_string(i), "server"));
  start(config("      ca: " + file("ca.crt") + "\n"));
  std::map<std::string, int> per_backend;
  auto s = stub();  // one client connection: h2mesh balances each call
  for (int i = 0; i < 24; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    helloworld::HelloRequest req;
    helloworld::HelloReply reply;
    grpc::Status st = s->SayHello(&ctx, req, &reply);
    ASSERT_TRUE(st.ok()) << st.error_message();
    per_backend[backend_of(reply.message())]++;
  }
  EXPECT_EQ(per_backend,
            (std::map<std::string, int>{
                {"greeter-1", 6}, {"greeter-2", 6}, {"greeter-3", 6}, {"greeter-4", 6}}));
  // Verified by IP SAN (no server_name, no san): one full handshake per backend.
  EXPECT_EQ(handshakes("ok"), 4u);
  EXPECT_EQ(handshakes("verify_failed"), 0u);
}

TEST_F(TlsUpstreamTest, PythonGrpcioBackendWithServerName) {
  backends_.push_back(python_backend("grpc", "python-1", "server"));
  start(config("      ca: " + file("ca.crt") + "\n      server_name: greeter.internal\n"));
  std::string backend;
  grpc::Status st = call(&backend);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << proxy_log();
  EXPECT_EQ(backend, "python-1");
  EXPECT_EQ(handshakes("ok"), 1u);
}

TEST_F(TlsUpstreamTest, MutualTlsBackendGetsTheClientCertificate) {
  backends_.push_back(tls_backend("greeter-1", "server", 0, {"--tls-client-ca", file("ca.crt")}));
  start(config("      ca: " + file("ca.crt") + "\n      cert: " + file("client.crt") +
               "\n      key: " + file("client.key") + "\n"));
  grpc::Status st = call();
  EXPECT_TRUE(st.ok()) << st.error_message() << "\n" << proxy_log();
  // The client certificate's notAfter is on /metrics, as openssl reads it from the file.
  auto [code, metrics] = http_get(proxy_.admin_port, "/metrics");
  ASSERT_EQ(code, 200);
  std::regex re("h2mesh_tls_certificate_expiry_timestamp_seconds\\{owner=\"cluster/greeter\","
                "cert=\"" + file("client.crt") + "\"\\} (\\d+)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(metrics, m, re)) << metrics;
  auto end = h2mesh::run_command(
      {"/bin/sh", "-c",
       "date -u -d \"$(openssl x509 -noout -enddate -in '" + file("client.crt") +
           "' | cut -d= -f2)\" +%s"});
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(std::stoll(m[1]), std::stoll(end->out)) << end->out << end->err;
}

TEST_F(TlsUpstreamTest, MutualTlsBackendRefusesAProxyWithoutClientCertificate) {
  backends_.push_back(tls_backend("greeter-1", "server", 0, {"--tls-client-ca", file("ca.crt")}));
  start(config("      ca: " + file("ca.crt") + "\n"));
  grpc::Status st = call();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_TRUE(eventually(
      [&] {
        return proxy_log().find("connect to upstream " + backends_[0].address() + " failed") !=
               std::string::npos;
      },
      std::chrono::seconds(5)))
      << proxy_log();
}

TEST_F(TlsUpstreamTest, BackendCertificateFromAnotherCaFails) {
  backends_.push_back(tls_backend("greeter-1", "stranger"));
  start(config("      ca: " + file("ca.crt") + "\n"));
  expect_refused(
      "verify_failed",
      "TLS handshake failed: certificate verify failed (unable to get local issuer certificate)");
}

TEST_F(TlsUpstreamTest, ExpiredBackendCertificateFails) {
  backends_.push_back(tls_backend("greeter-1", "expired"));
  start(config("      ca: " + file("ca.crt") + "\n"));
  expect_refused("verify_failed",
                 "TLS handshake failed: certificate verify failed (certificate has expired)");
}

TEST_F(TlsUpstreamTest, DnsNameMismatchFails) {
  backends_.push_back(tls_backend("greeter-1", "server"));
  start(config("      ca: " + file("ca.crt") + "\n      server_name: billing.internal\n"));
  expect_refused("san_mismatch",
                 "certificate verify failed (hostname mismatch): the server certificate carries "
                 "none of the expected names (billing.internal)");
}

TEST_F(TlsUpstreamTest, SpiffeUriSanIsVerified) {
  backends_.push_back(tls_backend("greeter-1", "server"));
  start(config("      ca: " + file("ca.crt") + "\n      san: [\"" + std::string(kGreeterUri) +
               "\"]\n"));
  grpc::Status st = call();
  EXPECT_TRUE(st.ok()) << st.error_message() << "\n" << proxy_log();
  EXPECT_EQ(handshakes("ok"), 1u);
}

TEST_F(TlsUpstreamTest, SpiffeUriSanMismatchFails) {
  backends_.push_back(tls_backend("greeter-1", "server"));
  start(config("      ca: " + file("ca.crt") +
               "\n      san: [\"spiffe://cluster.local/ns/grpcdemo/sa/billing\"]\n"));
  expect_refused("san_mismatch",
                 "it has DNS:greeter.internal, IP:127.0.0.1, URI:" + std::string(kGreeterUri));
}

TEST_F(TlsUpstreamTest, BackendWithoutAlpnH2Fails) {
  backends_.push_back(python_backend("no-alpn", "plain-tls", "server"));
  start(config("      ca: " + file("ca.crt") + "\n"));
  expect_refused("no_alpn", "the server did not select ALPN h2 (it selected none)");
}

TEST_F(TlsUpstreamTest, ReconnectResumesTheSession) {
  backends_.push_back(tls_backend("greeter-1", "server"));
  // Idle connections close quickly, so the next call needs a new one.
  start(config("      ca: " + file("ca.crt") + "\n", "    idle_timeout: 200ms\n"));
  for (int round = 0; round < 3; ++round) {
    grpc::Status st = call();
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_TRUE(eventually([&] { return upstream_connections() == 0; }, std::chrono::seconds(10)));
  }
  EXPECT_EQ(handshakes("ok"), 1u);
  EXPECT_EQ(handshakes("resumed"), 2u);
}

TEST_F(TlsUpstreamTest, RotatedCertificatesAreVerifiedOnNewConnections) {
  backends_.push_back(tls_backend("greeter-1", "server"));
  const std::string bundle = file("bundle.crt");
  std::filesystem::copy_file(file("ca.crt"), bundle);
  start(config("      ca: " + bundle + "\n"));
  ASSERT_TRUE(call().ok());
  // The backend comes back on its port with a certificate from a CA h2mesh does not trust.
  const uint16_t port = backends_[0].port;
  backends_[0].process->send_signal(SIGKILL);
  backends_[0].process->wait(std::chrono::seconds(10));
  backends_[0] = tls_backend("greeter-1", "stranger", port);
  ASSERT_EQ(backends_[0].port, port);
  EXPECT_EQ(call().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_GE(handshakes("verify_failed"), 1u);
  // h2mesh's CA bundle rotates to trust both CAs (written aside, renamed in place).
  {
    std::ifstream a(file("ca.crt")), b(file("other-ca.crt"));
    std::ofstream out(bundle + ".tmp");
    out << a.rdbuf() << b.rdbuf();
  }
  std::filesystem::rename(bundle + ".tmp", bundle);
  EXPECT_TRUE(eventually([&] { return call().ok(); }, std::chrono::seconds(15))) << proxy_log();
  EXPECT_NE(proxy_log().find("reloaded the client TLS files"), std::string::npos);
}

TEST_F(TlsUpstreamTest, HealthChecksSpeakTlsToo) {
  backends_.push_back(tls_backend("greeter-1", "server"));
  start(config("      ca: " + file("ca.crt") + "\n",
               "    health_check:\n      interval: 300ms\n      interval_jitter: 0s\n      "
               "timeout: 300ms\n"));
  auto metric = [&](const std::string& name) {
    auto [code, metrics] = http_get(proxy_.admin_port, "/metrics");
    std::regex re(name + "\\{cluster=\"greeter\",endpoint=\"[^\"]+\"\\} (\\d+)");
    std::smatch m;
    if (code != 200 || !std::regex_search(metrics, m, re)) return UINT64_MAX;
    return static_cast<uint64_t>(std::stoull(m[1]));
  };
  // Checks over clear text would all fail against a TLS backend and take it out of rotation.
  ASSERT_TRUE(eventually(
      [&] {
        return metric("h2mesh_endpoint_health_checks_total") >= 3 &&
               metric("h2mesh_endpoint_health_checks_total") != UINT64_MAX;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(metric("h2mesh_endpoint_health_check_failures_total"), 0u) << proxy_log();
  EXPECT_EQ(metric("h2mesh_endpoint_healthy"), 1u);
  EXPECT_TRUE(call().ok());
}

TEST_F(TlsUpstreamTest, CheckReadsTheClusterTlsFiles) {
  pki("leaf soon --ca ca --client --days 3");
  auto check = [&](const std::string& tls_yaml, std::string* err) {
    backends_.clear();
    const std::string path = file("check.yaml");
    std::ofstream(path) << simple_config({"127.0.0.1:1"}, "round_robin", 1,
                                         "    tls:\n" + tls_yaml);
    auto p = Subprocess::spawn({bin_dir() + "/h2mesh", "check", "--config", path}, dir_, "check");
    EXPECT_TRUE(p.ok());
    if (!p.ok()) return -1;
    auto rc = (*p)->wait(std::chrono::seconds(20));
    *err = (*p)->read_all(Subprocess::Stream::Stderr);
    return rc.value_or(-1);
  };
  std::string err;
  EXPECT_EQ(check("      ca: " + file("ca.crt") + "\n      cert: " + file("client.crt") +
                      "\n      key: " + file("client.key") + "\n",
                  &err),
            0)
      << err;
  EXPECT_EQ(err, "");
  // Within 7 days of expiry: a warning, still valid.
  EXPECT_EQ(
      check("      cert: " + file("soon.crt") + "\n      key: " + file("soon.key") + "\n", &err),
      0);
  EXPECT_NE(err.find("warning: cluster greeter: " + file("soon.crt") + ": the certificate expires at"),
            std::string::npos)
      << err;
  EXPECT_EQ(check("      ca: " + file("missing.crt") + "\n", &err), 1);
  EXPECT_NE(err.find("error: cluster greeter: " + file("missing.crt") + ": cannot be read"),
            std::string::npos)
      << err;
  EXPECT_EQ(
      check("      cert: " + file("expired.crt") + "\n      key: " + file("client.key") + "\n",
            &err),
      1);
  EXPECT_NE(err.find(file("expired.crt") + ": the certificate expired at"), std::string::npos)
      << err;
  EXPECT_NE(err.find(file("client.key") + ": does not match the certificate " + file("expired.crt")),
            std::string::npos)
      << err;
}

}  // namespace
}  // namespace h2mesh_test
