// TLS on a listener, with real processes: h2mesh terminating TLS (and mTLS) in front of clear-text
// greeter backends, called by grpc++ (secure channels, in this process), python3-grpcio and
// @grpc/grpc-js (tests/interop, with their --tls-* flags) and by `openssl s_client` where a test
// needs to see the handshake itself (SNI, ALPN, serial numbers, renegotiation). Certificates come
// from tests/fakes/test_pki.py into a temporary directory. Every outcome is checked from the
// client's side and from h2mesh's /metrics.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "harness.h"

#ifdef __SANITIZE_THREAD__
// This test process drives grpc++ TLS clients. Debian's gRPC is not instrumented: a shared_ptr
// the test holds (a channel's credentials) is released last on one of gRPC's threads, with
// reference counting TSan does not see, so its delete is reported against the test thread's
// earlier read. Suppressed here, for this executable only: the h2mesh processes under test keep
// scripts/tsan.supp alone, and a race in them still fails the test.
extern "C" const char* __tsan_default_suppressions() {
  return "race:std::_Sp_counted_base<(__gnu_cxx::_Lock_policy)2>::_M_release_last_use\n";
}
#endif

namespace h2mesh_test {
namespace {

namespace fs = std::filesystem;

const std::string kClientId = "spiffe://cluster.local/ns/grpcdemo/sa/greeter-client";
const std::string kIntruderId = "spiffe://cluster.local/ns/grpcdemo/sa/intruder";

std::string source_dir() { return H2MESH_SOURCE_DIR; }

h2mesh::CommandOutput run(const std::vector<std::string>& argv, std::string_view input = {}) {
  auto out = h2mesh::run_command(argv, input);
  EXPECT_TRUE(out.ok()) << argv[0];
  return out.ok() ? *out : h2mesh::CommandOutput{};
}

// `openssl ARGS...`, bounded by `timeout` so a stuck handshake cannot hang the test.
h2mesh::CommandOutput openssl(std::vector<std::string> args, std::string_view input = {}) {
  args.insert(args.begin(), {"/usr/bin/timeout", "10", "/usr/bin/openssl"});
  return run(args, input);
}

// "serial=..." of a PEM certificate (the first one in `pem`).
std::string serial_of_pem(const std::string& pem) {
  auto out = openssl({"x509", "-noout", "-serial"}, pem);
  return out.out.substr(0, out.out.find('\n'));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

uint64_t handshakes(uint16_t admin_port, const std::string& result) {
  return metric(admin_port,
                "h2mesh_tls_handshakes_total{listener=\"tls\",result=\"" + result + "\"}")
      .value_or(0);
}

struct TlsFiles {
  std::string ca, cert, key;
};

std::shared_ptr<grpc::Channel> tls_channel(const std::string& target, const TlsFiles& files,
                                           const std::string& server_name = "greeter.internal") {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = read_file(files.ca);
  if (!files.cert.empty()) {
    ssl.pem_cert_chain = read_file(files.cert);
    ssl.pem_private_key = read_file(files.key);
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args);
}

grpc::Status say_hello(const std::shared_ptr<grpc::Channel>& channel,
                       std::string* backend = nullptr) {
  auto stub = helloworld::Greeter::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  helloworld::HelloRequest req;
  req.set_name("tls");
  helloworld::HelloReply reply;
  auto status = stub->SayHello(&ctx, req, &reply);
  if (backend) *backend = backend_of(reply.message());
  return status;
}

class TlsListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir();
    pki_ = dir_ + "/pki";
    pki({"ca", "ca"});
    pki({"ca", "otherca"});
    pki({"leaf", "server", "--ca", "ca", "--dns", "greeter.internal", "--ip", "127.0.0.1",
         "--server"});
    pki({"leaf", "expired", "--ca", "ca", "--dns", "greeter.internal", "--server", "--expired"});
    pki({"leaf", "client", "--ca", "ca", "--uri", kClientId, "--client"});
    pki({"leaf", "intruder", "--ca", "ca", "--uri", kIntruderId, "--client"});
    pki({"leaf", "foreign", "--ca", "otherca", "--uri", kClientId, "--client"});
    backend_ = start_backend(dir_, "b1");
  }
  void TearDown() override {
    proxy_.process.reset();
    backend_.process.reset();
    fs::remove_all(dir_);
  }

  void pki(std::vector<std::string> args) {
    args.insert(args.begin(),
                {"/usr/bin/python3", source_dir() + "/tests/fakes/test_pki.py", "--dir", pki_});
    auto out = run(args);
    ASSERT_EQ(out.exit_code, 0) << out.err;
  }
  std::string crt(const std::string& name) const { return pki_ + "/" + name + ".crt"; }
  std::string key(const std::string& name) const { return pki_ + "/" + name + ".key"; }
  TlsFiles client(const std::string& name, const std::string& ca = "ca") const {
    return {crt(ca), crt(name), key(name)};
  }

  // One TLS listener "tls" in front of the backend; `tls` is the body of its tls map.
  std::string yaml(const std::string& tls, const std::string& listener_extra = "") const {
    std::string y = "workers: 2\nadmin:\n  address: \"127.0.0.1:0\"\n";
    y += "listeners:\n  - name: tls\n    address: \"127.0.0.1:0\"\n" + listener_extra;
    y += "    tls:\n" + tls;
    y += "    routes:\n      - cluster: greeter\n";
    y += "clusters:\n  - name: greeter\n    endpoints: [\"" + backend_.address() + "\"]\n";
    return y;
  }
  void start(const std::string& tls, const std::string& listener_extra = "") {
    proxy_ = start_proxy(dir_, yaml(tls, listener_extra));
  }
  // A new config file in place (renamed over the old one), then SIGHUP; true once the proxy
  // logged `expect` once more than before (the file watcher may reload it first: same content).
  bool reload(const std::string& tls, const std::string& expect) {
    auto count = [&] {
      const std::string err = proxy_.process->read_all(h2mesh::Subprocess::Stream::Stderr);
      size_t n = 0;
      for (size_t at = err.find(expect); at != std::string::npos; at = err.find(expect, at + 1))
        ++n;
      return n;
    };
    const size_t before = count();
    const std::string tmp = proxy_.config_path + ".new";
    std::ofstream(tmp) << yaml(tls);
    EXPECT_EQ(std::rename(tmp.c_str(), proxy_.config_path.c_str()), 0);
    proxy_.process->send_signal(SIGHUP);
    return eventually([&] { return count() > before; }, std::chrono::seconds(10));
  }
  std::string server_pair(const std::string& name = "server") const {
    return "      cert: " + crt(name) + "\n      key: " + key(name) + "\n";
  }
  std::string mtls(const std::string& extra = "") const {
    return server_pair() + "      ca: " + crt("ca") + "\n      require_client_cert: true\n" + extra;
  }

  InteropReport python(const TlsFiles& files, int n) {
    std::vector<std::string> argv = {"/usr/bin/python3",
                                     source_dir() + "/tests/interop/python_client.py",
                                     "--target",
                                     proxy_.target(),
                                     "-n",
                                     std::to_string(n),
                                     "--tls-ca",
                                     files.ca,
                                     "--tls-server-name",
                                     "greeter.internal"};
    if (!files.cert.empty())
      argv.insert(argv.end(), {"--tls-cert", files.cert, "--tls-key", files.key});
    auto out = run(argv);
    return parse_interop_report(out.out);
  }
  std::optional<InteropReport> node(const TlsFiles& files, int n) {
    const std::string node_dir = source_dir() + "/tests/interop/node";
    EXPECT_TRUE(fs::is_directory(node_dir + "/node_modules/@grpc/grpc-js"))
        << node_dir << "/node_modules is missing: run `npm ci --prefix tests/interop/node`";
    std::string node = h2mesh::find_executable("node");
    EXPECT_FALSE(node.empty()) << "`node` (>= 20) is not on PATH";
    if (node.empty()) return std::nullopt;
    std::vector<std::string> argv = {node,
                                     node_dir + "/client.js",
                                     "--target",
                                     proxy_.target(),
                                     "-n",
                                     std::to_string(n),
                                     "--tls-ca",
                                     files.ca,
                                     "--tls-server-name",
                                     "greeter.internal"};
    if (!files.cert.empty())
      argv.insert(argv.end(), {"--tls-cert", files.cert, "--tls-key", files.key});
    return parse_interop_report(run(argv).out);
  }

  // The certificate the listener serves for `servername` ("" sends no SNI), as its serial.
  std::string served_serial(const std::string& servername,
                            const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"s_client", "-connect", proxy_.target(), "-alpn", "h2"};
    if (!servername.empty()) args.insert(args.end(), {"-servername", servername});
    args.insert(args.end(), extra.begin(), extra.end());
    auto out = openssl(args);
    const size_t begin = out.out.find("-----BEGIN CERTIFICATE-----");
    const size_t end = out.out.find("-----END CERTIFICATE-----");
    if (begin == std::string::npos || end == std::string::npos) return "(no certificate)";
    return serial_of_pem(out.out.substr(begin, end + 25 - begin) + "\n");
  }
  std::string file_serial(const std::string& path) { return serial_of_pem(read_file(path)); }

  std::string dir_, pki_;
  Backend backend_;
  Proxy proxy_;
};

TEST_F(TlsListenerTest, GrpcppPythonAndNodeCallThroughTlsListener) {
  start(server_pair());
  auto channel = tls_channel(proxy_.target(), {crt("ca"), "", ""});
  for (int i = 0; i < 5; ++i) {
    std::string backend;
    auto st = say_hello(channel, &backend);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(backend, "b1");
  }
  auto py = python({crt("ca"), "", ""}, 4);
  EXPECT_EQ(py.ok, 4) << py.json;
  EXPECT_EQ(py.stream_ok, true);
  EXPECT_EQ(py.bidi_ok, true);
  auto js = node({crt("ca"), "", ""}, 4);
  ASSERT_TRUE(js);
  EXPECT_EQ(js->ok, 4) << js->json;
  EXPECT_EQ(js->bidi_ok, true);
  EXPECT_GE(handshakes(proxy_.admin_port, "ok"), 3u);
  // Without a CA no client certificate is asked for: a client identity never enters.
  EXPECT_EQ(metric(proxy_.admin_port, "h2mesh_authz_denied_total{listener=\"tls\"}"), 0u);
}

TEST_F(TlsListenerTest, MutualTlsAllowListAdmitsOnlyListedIdentities) {
  start(mtls("      allowed_identities: [\"" + kClientId + "\"]\n"));
  auto allowed = tls_channel(proxy_.target(), client("client"));
  ASSERT_TRUE(say_hello(allowed).ok());
  auto py = python(client("client"), 3);
  EXPECT_EQ(py.ok, 3) << py.json;
  EXPECT_EQ(py.stream_ok, true);
  auto js = node(client("client"), 3);
  ASSERT_TRUE(js);
  EXPECT_EQ(js->ok, 3) << js->json;

  // A certificate from the same CA with another identity: the handshake succeeds, every call is
  // refused at once with PERMISSION_DENIED and never reaches the backend.
  const uint64_t backend_calls = backend_stats(backend_).calls();
  auto intruder = tls_channel(proxy_.target(), client("intruder"));
  for (int i = 0; i < 4; ++i) {
    auto st = say_hello(intruder);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  }
  auto py_intruder = python(client("intruder"), 2);
  EXPECT_EQ(py_intruder.ok, 0);
  EXPECT_EQ(py_intruder.failed, 2);
  EXPECT_EQ(backend_stats(backend_).calls(), backend_calls);
  // 4 + python's 2 unary, 1 stream and 1 bidi call.
  EXPECT_EQ(metric(proxy_.admin_port, "h2mesh_authz_denied_total{listener=\"tls\"}"), 8u);
  // The allowed client on the same listener is unaffected.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(say_hello(allowed).ok());
}

TEST_F(TlsListenerTest, ReloadChangesTlsSettingsAndRefusesFilesThatDoNotLoad) {
  start(mtls());
  auto intruder = tls_channel(proxy_.target(), client("intruder"));
  auto allowed = tls_channel(proxy_.target(), client("client"));
  ASSERT_TRUE(say_hello(intruder).ok());
  ASSERT_TRUE(say_hello(allowed).ok());
  // An allow-list added by a reload applies to the next call of a connection already open.
  ASSERT_TRUE(reload(mtls("      allowed_identities: [\"" + kClientId + "\"]\n"),
                     "configuration reloaded"));
  EXPECT_EQ(say_hello(intruder).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(say_hello(allowed).ok());
  // A certificate that does not load: the reload is refused, the listener keeps serving.
  ASSERT_TRUE(reload("      cert: " + dir_ + "/missing.crt\n      key: " + key("server") + "\n",
                     "refused: listener tls: TLS: cannot read " + dir_ + "/missing.crt"));
  EXPECT_TRUE(say_hello(tls_channel(proxy_.target(), client("client"))).ok());
  EXPECT_EQ(say_hello(tls_channel(proxy_.target(), {crt("ca"), "", ""})).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // Server-only TLS from now on: new connections need no client certificate.
  ASSERT_TRUE(reload(server_pair(), "configuration reloaded"));
  EXPECT_TRUE(say_hello(tls_channel(proxy_.target(), {crt("ca"), "", ""})).ok());
}

TEST_F(TlsListenerTest, HandshakeFailuresAreRefusedAndCountedByReason) {
  start(mtls());
  const uint16_t admin = proxy_.admin_port;
  // The client does not trust the server's CA: it ends the handshake (gRPC clients close
  // without an alert, openssl sends one); no call gets through.
  auto wrong_ca = tls_channel(proxy_.target(), {crt("otherca"), crt("client"), key("client")});
  EXPECT_EQ(say_hello(wrong_ca).error_code(), grpc::StatusCode::UNAVAILABLE);
  openssl({"s_client", "-connect", proxy_.target(), "-alpn", "h2", "-verify_return_error",
           "-CAfile", crt("otherca")});
  EXPECT_TRUE(eventually([&] { return handshakes(admin, "bad_certificate") >= 1; },
                         std::chrono::seconds(5)));
  EXPECT_GE(handshakes(admin, "bad_certificate") + handshakes(admin, "closed"), 2u);
  // No client certificate where one is required.
  auto anonymous = tls_channel(proxy_.target(), {crt("ca"), "", ""});
  EXPECT_EQ(say_hello(anonymous).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(eventually([&] { return handshakes(admin, "no_client_cert") >= 1; },
                         std::chrono::seconds(5)));
  // A client certificate from another CA.
  auto foreign = tls_channel(proxy_.target(), client("foreign"));
  EXPECT_EQ(say_hello(foreign).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(eventually([&] { return handshakes(admin, "bad_client_cert") >= 1; },
                         std::chrono::seconds(5)));
  // ALPN without h2: no_application_protocol.
  auto http11 = openssl({"s_client", "-connect", proxy_.target(), "-alpn", "http/1.1", "-cert",
                         crt("client"), "-key", key("client"), "-CAfile", crt("ca")});
  EXPECT_NE(http11.err.find("no application protocol"), std::string::npos) << http11.err;
  EXPECT_EQ(handshakes(admin, "no_alpn"), 1u);
  // No ALPN at all: accepted (its bytes must still be HTTP/2 to get anywhere).
  const uint64_t ok_before = handshakes(admin, "ok");
  auto no_alpn = openssl({"s_client", "-connect", proxy_.target(), "-cert", crt("client"), "-key",
                          key("client"), "-CAfile", crt("ca"), "-verify_return_error"});
  EXPECT_NE(no_alpn.out.find("Verify return code: 0 (ok)"), std::string::npos) << no_alpn.out;
  EXPECT_EQ(handshakes(admin, "ok"), ok_before + 1);
  // A clear-text HTTP/2 client on the TLS port: not TLS, refused.
  EXPECT_EQ(say_hello(make_channel(proxy_.target())).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(
      eventually([&] { return handshakes(admin, "protocol") >= 1; }, std::chrono::seconds(5)));
  // None of it touched the backend; a good client still gets through.
  EXPECT_EQ(backend_stats(backend_).calls(), 0u);
  EXPECT_TRUE(say_hello(tls_channel(proxy_.target(), client("client"))).ok());
}

TEST_F(TlsListenerTest, TlsClientOnClearTextPortFails) {
  proxy_ = start_proxy(dir_, simple_config({backend_.address()}, "round_robin"));
  auto st = say_hello(tls_channel(proxy_.target(), {crt("ca"), "", ""}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_GE(metric(proxy_.admin_port, "h2mesh_downstream_protocol_errors_total"), 1u);
  EXPECT_TRUE(say_hello(make_channel(proxy_.target())).ok());
  // A clear-text listener has no TLS series at all.
  auto [status, body] = http_get(proxy_.admin_port, "/metrics");
  EXPECT_EQ(body.find("h2mesh_tls_handshakes_total"), std::string::npos);
}

TEST_F(TlsListenerTest, ExpiredServingCertificateFailsClientsAndReadiness) {
  start(server_pair("expired"));
  EXPECT_NE(proxy_.process->read_all(h2mesh::Subprocess::Stream::Stderr)
                .find("listener tls: TLS: the certificate " + crt("expired") + " has expired"),
            std::string::npos);
  auto st = say_hello(tls_channel(proxy_.target(), {crt("ca"), "", ""}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  auto [status, body] = http_get(proxy_.admin_port, "/ready");
  EXPECT_EQ(status, 503);
  EXPECT_EQ(body, "serving certificate of listener tls expired\n");
  const uint64_t not_after =
      metric(proxy_.admin_port,
             "h2mesh_tls_certificate_expiry_timestamp_seconds{owner=\"listener/tls\","
             "cert=\"" +
                 crt("expired") + "\"}")
          .value_or(0);
  EXPECT_GT(not_after, 0u);
  EXPECT_LT(not_after, static_cast<uint64_t>(::time(nullptr)));
}

TEST_F(TlsListenerTest, ReadyAndExpiryMetricWithValidCertificate) {
  start(server_pair());
  auto [status, body] = http_get(proxy_.admin_port, "/ready");
  EXPECT_EQ(status, 200) << body;
  const uint64_t not_after =
      metric(proxy_.admin_port,
             "h2mesh_tls_certificate_expiry_timestamp_seconds{owner=\"listener/tls\","
             "cert=\"" +
                 crt("server") + "\"}")
          .value_or(0);
  EXPECT_GT(not_after, static_cast<uint64_t>(::time(nullptr)));
}

TEST_F(TlsListenerTest, SniPicksTheCertificate) {
  pki({"leaf", "a", "--ca", "ca", "--dns", "a.example", "--server"});
  pki({"leaf", "b", "--ca", "ca", "--dns", "b.example", "--dns", "*.wild.example", "--server"});
  pki({"leaf", "c", "--ca", "ca", "--dns", "exact.wild.example", "--server"});
  start(
      "      certificates:\n"
      "        - { cert: " +
      crt("a") + ", key: " + key("a") +
      " }\n"
      "        - { cert: " +
      crt("b") + ", key: " + key("b") +
      " }\n"
      "        - { cert: " +
      crt("c") + ", key: " + key("c") + " }\n");
  const std::string a = file_serial(crt("a")), b = file_serial(crt("b")), c = file_serial(crt("c"));
  ASSERT_NE(a, b);
  EXPECT_EQ(served_serial("b.example"), b);
  EXPECT_EQ(served_serial("a.example"), a);
  EXPECT_EQ(served_serial("x.wild.example"), b);      // the wildcard
  EXPECT_EQ(served_serial("exact.wild.example"), c);  // an exact name wins over a wildcard
  EXPECT_EQ(served_serial("unknown.example"), a);     // the default
  EXPECT_EQ(served_serial(""), a);
  // A gRPC client naming b.example verifies b's certificate and gets through.
  EXPECT_TRUE(say_hello(tls_channel(proxy_.target(), {crt("ca"), "", ""}, "b.example")).ok());
}

TEST_F(TlsListenerTest, CheckReadsEveryTlsFileAndRunRefusesBadOnes) {
  auto config = [&](const std::string& tls) {
    std::string y = "listeners:\n  - name: tls\n    address: \"127.0.0.1:0\"\n    tls:\n" + tls;
    y += "    routes: [ { cluster: greeter } ]\n";
    y += "clusters:\n  - name: greeter\n    endpoints: [\"" + backend_.address() + "\"]\n";
    std::ofstream(dir_ + "/check.yaml") << y;
    return dir_ + "/check.yaml";
  };
  auto check = [&](const std::string& tls) {
    return run({bin_dir() + "/h2mesh", "check", "--config", config(tls)});
  };
  auto good = check(mtls());
  EXPECT_EQ(good.exit_code, 0) << good.err;
  // test_pki's leaves live two days: inside the week check warns about.
  EXPECT_NE(good.err.find("warning: listener tls: " + crt("server") + ": the certificate expires"),
            std::string::npos)
      << good.err;
  auto expired = check(server_pair("expired"));
  EXPECT_EQ(expired.exit_code, 1);
  EXPECT_NE(expired.err.find(crt("expired") + ": the certificate expired at"), std::string::npos)
      << expired.err;
  auto mismatch = check("      cert: " + crt("server") + "\n      key: " + key("client") + "\n");
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_NE(mismatch.err.find(key("client") + ": does not match the certificate " + crt("server")),
            std::string::npos)
      << mismatch.err;
  auto missing_ca = check(server_pair() + "      ca: " + dir_ + "/nope.crt\n");
  EXPECT_EQ(missing_ca.exit_code, 1);
  EXPECT_NE(missing_ca.err.find(dir_ + "/nope.crt: cannot be read"), std::string::npos)
      << missing_ca.err;
  // `run` loads them before listening, and refuses to start on a pair that does not load.
  auto run_bad =
      run({"/usr/bin/timeout", "20", bin_dir() + "/h2mesh", "run", "--config",
           config("      cert: " + crt("server") + "\n      key: " + key("client") + "\n")});
  EXPECT_EQ(run_bad.exit_code, 1);
  EXPECT_NE(run_bad.err.find("listener tls: TLS: bad key " + key("client") + ": "),
            std::string::npos)
      << run_bad.err;
}

// Kubernetes updates a Secret volume by pointing ..data at a new directory; tls.crt and tls.key
// are symlinks through it.
void point_at(const std::string& d, const std::string& version) {
  fs::create_directory_symlink(version, d + "/..data_tmp");
  fs::rename(d + "/..data_tmp", d + "/..data");
  for (const char* f : {"tls.crt", "tls.key"})
    if (!fs::is_symlink(d + "/" + f)) fs::create_symlink(std::string("..data/") + f, d + "/" + f);
}

TEST_F(TlsListenerTest, RotationUnderLoadFailsNoCall) {
  const std::string secret = dir_ + "/secret";
  for (const char* v : {"..2026_01", "..2026_02"}) {
    fs::create_directories(secret + "/" + v);
    pki({"leaf", "server", "--ca", "ca", "--dns", "greeter.internal", "--server"});
    fs::copy_file(crt("server"), secret + "/" + v + "/tls.crt");
    fs::copy_file(key("server"), secret + "/" + v + "/tls.key");
  }
  point_at(secret, "..2026_01");
  start("      cert: " + secret + "/tls.crt\n      key: " + secret + "/tls.key\n");
  const std::string v1 = file_serial(secret + "/..2026_01/tls.crt");
  const std::string v2 = file_serial(secret + "/..2026_02/tls.crt");
  ASSERT_NE(v1, v2);
  EXPECT_EQ(served_serial("greeter.internal"), v1);

  // Calls in a loop, a new connection (so a new handshake) every 5 calls.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_failure;
  std::thread loop([&] {
    std::shared_ptr<grpc::Channel> channel;
    for (int i = 0; i < 100000 && !stop; ++i) {
      if (i % 5 == 0) channel = tls_channel(proxy_.target(), {crt("ca"), "", ""});
      auto st = say_hello(channel);
      if (st.ok()) {
        ok++;
      } else if (failed++ == 0) {
        first_failure = st.error_message();
      }
    }
  });
  ASSERT_TRUE(eventually([&] { return ok >= 50; }, std::chrono::seconds(20)));
  point_at(secret, "..2026_02");
  EXPECT_TRUE(eventually([&] { return served_serial("greeter.internal") == v2; },
                         std::chrono::seconds(10)));
  const int after_swap = ok;
  EXPECT_TRUE(eventually([&] { return ok >= after_swap + 50; }, std::chrono::seconds(20)));
  stop = true;
  loop.join();
  EXPECT_EQ(failed, 0) << first_failure;
  EXPECT_GE(handshakes(proxy_.admin_port, "ok"), 20u);
  const uint64_t not_after =
      metric(proxy_.admin_port,
             "h2mesh_tls_certificate_expiry_timestamp_seconds{owner=\"listener/tls\","
             "cert=\"" +
                 secret + "/tls.crt\"}")
          .value_or(0);
  EXPECT_GT(not_after, 0u);
}

int connect_loopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Connects with TLS 1.2 (blocking, OpenSSL directly: the CLI cannot be scripted reliably for
// this), then asks to renegotiate; returns the reason code of the error that ends the new
// handshake, 0 if it succeeded, -1 if the first handshake failed.
int renegotiation_error(uint16_t port, const std::string& cert, const std::string& key) {
  int fd = connect_loopback(port);
  if (fd < 0) return -1;
  timeval tv{10, 0};  // bounded: a server that never answers fails the test, never hangs it
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_use_certificate_file(ctx, cert.c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM);
  SSL* ssl = SSL_new(ctx);
  static const unsigned char kH2[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl, kH2, sizeof(kH2));
  SSL_set_fd(ssl, fd);
  int result = -1;
  char settings[256];
  // The server's SETTINGS first, so that nothing but its answer follows the request.
  if (SSL_connect(ssl) == 1 && SSL_read(ssl, settings, sizeof(settings)) > 0) {
    ERR_clear_error();
    result = 0;
    if (SSL_renegotiate(ssl) != 1 || SSL_do_handshake(ssl) != 1) {
      result = ERR_GET_REASON(ERR_peek_error());
    } else {
      // The request went out; the answer comes with the next read.
      char buf[256];
      if (SSL_read(ssl, buf, sizeof(buf)) <= 0) result = ERR_GET_REASON(ERR_peek_error());
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return result;
}

TEST_F(TlsListenerTest, HandshakeFloodSlowHandshakesAndRenegotiationSpareBystanders) {
  start(mtls(), "    header_timeout: 1s\n");
  const uint16_t admin = proxy_.admin_port;
  auto bystander = tls_channel(proxy_.target(), client("client"));
  ASSERT_TRUE(say_hello(bystander).ok());

  // 150 connections that never say a word, 50 that stop in the middle of a ClientHello (a TLS
  // record header promising 512 bytes, then 10 of them).
  std::vector<int> fds;
  for (int i = 0; i < 200; ++i) {
    int fd = connect_loopback(proxy_.port);
    ASSERT_GE(fd, 0);
    if (i >= 150) {
      const char partial[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03";
      ASSERT_EQ(::send(fd, partial, sizeof(partial) - 1, MSG_NOSIGNAL),
                static_cast<ssize_t>(sizeof(partial) - 1));
    }
    fds.push_back(fd);
  }
  int ok = 0;
  for (int i = 0; i < 50; ++i) ok += say_hello(bystander).ok();
  EXPECT_EQ(ok, 50);
  // New connections keep being served while the half-open ones wait out their deadline.
  EXPECT_TRUE(say_hello(tls_channel(proxy_.target(), client("client"))).ok());
  EXPECT_TRUE(
      eventually([&] { return handshakes(admin, "timeout") >= 200; }, std::chrono::seconds(15)));
  for (int fd : fds) {
    char byte;
    // The deadline closed them: EOF (or a reset), never a hang (the timeout bounds the wait).
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    EXPECT_LE(::recv(fd, &byte, 1, 0), 0);
    ::close(fd);
  }

  // A TLS 1.2 client asking to renegotiate is refused (no_renegotiation); others carry on.
  EXPECT_EQ(renegotiation_error(proxy_.port, crt("client"), key("client")), SSL_R_NO_RENEGOTIATION);
  ok = 0;
  for (int i = 0; i < 20; ++i) ok += say_hello(bystander).ok();
  EXPECT_EQ(ok, 20);
}

}  // namespace
}  // namespace h2mesh_test
