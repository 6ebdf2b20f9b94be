// Kubeconfig and in-cluster credentials, and the re-reading of a rotating token file.

#include "discovery/k8s_credentials.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "discovery/k8s_client.h"

namespace h2mesh::discovery::k8s {
namespace {

using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/h2mesh-k8s-cred-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

// base64 of "-----BEGIN CERTIFICATE-----\n" (not a whole certificate: parsing does not check it).
constexpr char kCaData[] = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==";

constexpr char kKubeconfig[] = R"(apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority: /etc/prod-ca.crt
- name: kind-dev
  cluster:
    server: https://127.0.0.1:34567
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
users:
- name: dev-admin
  user:
    token: dev-token
- name: prod-cert
  user:
    client-certificate: certs/client.crt
    client-key: certs/client.key
contexts:
- name: prod
  context: {cluster: prod, user: prod-cert}
- name: dev
  context:
    cluster: kind-dev
    user: dev-admin
    namespace: grpcdemo
current-context: dev
)";

TEST(K8sCredentials, KubeconfigCurrentContextGivesServerCaTokenAndNamespace) {
  auto c = parse_kubeconfig(kKubeconfig, "/home/me/.kube");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server, "https://127.0.0.1:34567");
  EXPECT_EQ(c->host, "127.0.0.1");
  EXPECT_EQ(c->port, 34567);
  EXPECT_EQ(c->ca.data, "-----BEGIN CERTIFICATE-----\n");
  EXPECT_EQ(c->ca.path, "");
  EXPECT_EQ(c->token, "dev-token");
  EXPECT_EQ(c->token_file, "");
  EXPECT_TRUE(c->client_cert.empty());
  EXPECT_EQ(c->namespace_, "grpcdemo");
  EXPECT_EQ(c->origin, "context dev");
}

TEST(K8sCredentials, KubeconfigRelativePathsAreRelativeToItsDirectory) {
  std::string other = kKubeconfig;
  other.replace(other.find("current-context: dev"), 20, "current-context: prod");
  auto c = parse_kubeconfig(other, "/home/me/.kube");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->ca.path, "/etc/prod-ca.crt");
  EXPECT_EQ(c->client_cert.path, "/home/me/.kube/certs/client.crt");
  EXPECT_EQ(c->client_key.path, "/home/me/.kube/certs/client.key");
  EXPECT_EQ(c->token, "");
  EXPECT_EQ(c->namespace_, "");
}

TEST(K8sCredentials, KubeconfigInlineClientCertificateAndTokenFile) {
  auto c =
      parse_kubeconfig(std::string(R"(
clusters: [{name: c, cluster: {server: "https://[fd00::1]", insecure-skip-tls-verify: true,
            tls-server-name: kubernetes.default.svc}}]
users: [{name: u, user: {client-certificate-data: )") +
                           kCaData + R"(, client-key-data: )" + kCaData + R"(, tokenFile: tok}}]
contexts: [{name: only, context: {cluster: c, user: u}}]
)",
                       "/cfg");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->host, "fd00::1");
  EXPECT_EQ(c->port, 443);
  EXPECT_EQ(c->server, "https://[fd00::1]:443");
  EXPECT_TRUE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->tls_server_name, "kubernetes.default.svc");
  EXPECT_EQ(c->client_cert.data, "-----BEGIN CERTIFICATE-----\n");
  EXPECT_EQ(c->client_key.data, "-----BEGIN CERTIFICATE-----\n");
  EXPECT_EQ(c->token_file, "/cfg/tok");
  EXPECT_TRUE(c->ca.empty());            // the system's CA store
  EXPECT_EQ(c->origin, "context only");  // no current-context, but only one context
}

// kubectl proxy beside the sidecar: plain HTTP, port 80 unless given, no TLS settings needed.
TEST(K8sCredentials, HttpServerIsPlainWithItsOwnDefaultPort) {
  auto proxy = parse_kubeconfig(R"(
clusters: [{name: c, cluster: {server: "http://127.0.0.1:8001"}}]
contexts: [{name: only, context: {cluster: c}}]
)",
                                "/cfg");
  ASSERT_TRUE(proxy.ok()) << proxy.error().message;
  EXPECT_TRUE(proxy->plain_http);
  EXPECT_EQ(proxy->host, "127.0.0.1");
  EXPECT_EQ(proxy->port, 8001);
  EXPECT_EQ(proxy->server, "http://127.0.0.1:8001");

  auto v6 = parse_server_url("http://[::1]/");
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_TRUE(v6->plain_http);
  EXPECT_EQ(v6->port, 80);
  EXPECT_EQ(v6->server, "http://[::1]:80");

  auto tls = parse_server_url("https://10.96.0.1");
  ASSERT_TRUE(tls.ok());
  EXPECT_FALSE(tls->plain_http);
  EXPECT_EQ(tls->port, 443);
}

TEST(K8sCredentials, KubeconfigMistakesAreNamed) {
  struct Case {
    std::string yaml;
    std::string message;
  };
  const std::string cluster = "clusters: [{name: c, cluster: {server: \"https://1.2.3.4\"}}]\n";
  const std::vector<Case> cases = {
      {"a: [", "not valid YAML"},
      {"- just a list", "not a kubeconfig"},
      {cluster + "contexts: [{name: a, context: {cluster: c}}, {name: b, context: {cluster: c}}]",
       "current-context is not set"},
      {cluster + "current-context: x\ncontexts: [{name: a, context: {cluster: c}}]",
       "context \"x\" not found"},
      {cluster + "current-context: a\ncontexts: [{name: a, context: {cluster: nope}}]",
       "cluster \"nope\" of context \"a\" not found"},
      {"clusters: [{name: c, cluster: {server: \"ftp://1.2.3.4\"}}]\n"
       "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]",
       "is not an https:// or http:// URL"},
      {"clusters: [{name: c, cluster: {server: \"https://1.2.3.4:99999\"}}]\n"
       "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]",
       "bad port"},
      {"clusters: [{name: c, cluster: {server: \"https://1.2.3.4/k8s\"}}]\n"
       "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]",
       "has a path"},
      {cluster + "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]",
       "user \"u\" of context \"a\" not found"},
      {cluster + "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                 "users: [{name: u, user: {exec: {command: aws}}}]",
       "exec and auth-provider plugins are not supported"},
      {cluster + "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                 "users: [{name: u, user: {client-certificate: x.crt}}]",
       "needs its key"},
      {"clusters: [{name: c, cluster: {server: \"https://1.2.3.4\", "
       "certificate-authority-data: \"!!!\"}}]\ncurrent-context: a\n"
       "contexts: [{name: a, context: {cluster: c}}]",
       "certificate-authority-data: invalid base64"},
  };
  for (const auto& c : cases) {
    auto r = parse_kubeconfig(c.yaml, "/x");
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_NE(r.error().message.find(c.message), std::string::npos)
        << "got: " << r.error().message << "\nwant: " << c.message;
  }
}

TEST(K8sCredentials, LoadKubeconfigNamesTheFile) {
  TempDir dir;
  auto missing = load_kubeconfig(dir.path() + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot read kubeconfig " + dir.path() + "/nope"),
            std::string::npos);
  std::string path = dir.write("config", kKubeconfig);
  auto c = load_kubeconfig(path);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->origin, "kubeconfig " + path + " (context dev)");
}

TEST(K8sCredentials, InClusterUsesEnvironmentAndServiceAccountFiles) {
  TempDir dir;
  dir.write("token", "eyJhbGciOi.token\n");
  dir.write("ca.crt", "ca");
  dir.write("namespace", "grpcdemo");
  auto c = in_cluster_credentials("10.96.0.1", "443", dir.path());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token_file, dir.path() + "/token");
  EXPECT_EQ(c->ca.path, dir.path() + "/ca.crt");
  EXPECT_EQ(c->namespace_, "grpcdemo");
  EXPECT_EQ(c->origin, "in-cluster service account " + dir.path());

  auto v6 = in_cluster_credentials("fd00:10:96::1", "443", dir.path());
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->server, "https://[fd00:10:96::1]:443");
  EXPECT_EQ(v6->host, "fd00:10:96::1");

  auto outside = in_cluster_credentials("", "", dir.path());
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.error().message.find("not running in a cluster"), std::string::npos);
}

TEST(K8sCredentials, LoadCredentialsHonoursTheServiceAccountDirOverride) {
  TempDir dir;
  dir.write("namespace", "ns-from-file\n");
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
  setenv("H2MESH_SERVICEACCOUNT_DIR", dir.path().c_str(), 1);
  auto c = load_credentials(config::KubernetesDiscovery{});
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  unsetenv("H2MESH_SERVICEACCOUNT_DIR");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server, "https://127.0.0.1:6443");
  EXPECT_EQ(c->namespace_, "ns-from-file");
  EXPECT_EQ(c->token_file, dir.path() + "/token");
}

TEST(K8sCredentials, Base64) {
  EXPECT_EQ(base64_decode("aGVsbG8=").value(), "hello");
  EXPECT_EQ(base64_decode("aGVsbG8").value(), "hello");
  EXPECT_EQ(base64_decode("aGVs\nbG8h").value(), "hello!");
  EXPECT_EQ(base64_decode("").value(), "");
  EXPECT_FALSE(base64_decode("a").ok());
  EXPECT_FALSE(base64_decode("aGVs*G8=").ok());
  EXPECT_FALSE(base64_decode("aG=Vs").ok());
}

// ---- token rotation --------------------------------------------------------------------------

TEST(K8sCredentials, FixedTokenNeedsNoFile) {
  TokenSource t("static", "");
  EXPECT_EQ(t.get(TimePoint{}).value(), "static");
  EXPECT_EQ(t.reads(), 0u);
}

TEST(K8sCredentials, RotatedTokenFileIsReadAgainWhenItChanges) {
  TempDir dir;
  std::string path = dir.write("token", "first-token\n");
  TokenSource t("", path);
  TimePoint now{};
  EXPECT_EQ(t.get(now).value(), "first-token");
  EXPECT_EQ(t.get(now + 1s).value(), "first-token");
  EXPECT_EQ(t.reads(), 1u);  // unchanged file: served from memory

  // The kubelet swaps in a new file (new inode), as with the projected volume's symlink swap.
  std::string next = dir.write("token.new", "second-token-which-is-longer");
  ASSERT_EQ(rename(next.c_str(), path.c_str()), 0);
  EXPECT_EQ(t.get(now + 2s).value(), "second-token-which-is-longer");
  EXPECT_EQ(t.reads(), 2u);
}

TEST(K8sCredentials, TokenFileIsReadAgainAtLeastEveryMinute) {
  TempDir dir;
  std::string path = dir.write("token", "aaaa");
  TokenSource t("", path);
  TimePoint now{};
  ASSERT_EQ(t.get(now).value(), "aaaa");
  // Same size, same inode, and a modification time restored: only age tells.
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  dir.write("token", "bbbb");
  timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  EXPECT_EQ(t.get(now + 59s).value(), "aaaa");
  EXPECT_EQ(t.get(now + 61s).value(), "bbbb");
}

TEST(K8sCredentials, InvalidatedTokenIsReadAgain) {
  TempDir dir;
  std::string path = dir.write("token", "aaaa");
  TokenSource t("", path);
  TimePoint now{};
  ASSERT_EQ(t.get(now).value(), "aaaa");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  dir.write("token", "cccc");
  timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  t.invalidate();  // after a 401
  EXPECT_EQ(t.get(now + 1s).value(), "cccc");
}

TEST(K8sCredentials, MissingOrEmptyTokenFileIsANamedError) {
  TempDir dir;
  TokenSource missing("", dir.path() + "/token");
  auto r = missing.get(TimePoint{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "cannot read the token " + dir.path() + "/token: No such file or directory");
  std::string path = dir.write("empty", "\n");
  TokenSource empty("", path);
  ASSERT_FALSE(empty.get(TimePoint{}).ok());
}

// ---- TLS context -----------------------------------------------------------------------------

TEST(K8sCredentials, TlsContextNamesAMissingOrEmptyCa) {
  TempDir dir;
  Credentials c;
  c.ca.path = dir.path() + "/ca.crt";
  auto missing = make_tls_context(c);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message,
            "cannot read the CA certificate " + dir.path() + "/ca.crt: No such file or directory");
  dir.write("ca.crt", "not a certificate\n");
  auto empty = make_tls_context(c);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().message, "no PEM certificate in the CA " + dir.path() + "/ca.crt");
  c.ca = PemSource{};
  EXPECT_TRUE(make_tls_context(c).ok());  // the system's store
  c.client_cert.data = "junk";
  c.client_key.data = "junk";
  auto bad_cert = make_tls_context(c);
  ASSERT_FALSE(bad_cert.ok());
  EXPECT_NE(bad_cert.error().message.find("bad client certificate"), std::string::npos);
}

// yaml-cpp 0.7 cannot go past a ',' after a document's top-level value (YAML::LoadAll loops
// on it for ever, see config/yaml_guard.h). YAML::Load reads one document and returns, but
// without an error: ",apiVersion: v1" would read as an empty kubeconfig, and a JSON kubeconfig
// followed by a stray ',' as if the ',' were not there. Both are refused at the ','.
TEST(K8sCredentials, KubeconfigWithATokenYamlCppStopsAtIsRefusedThere) {
  auto comma_first = parse_kubeconfig(",apiVersion: v1\nkind: Config\n", "/tmp");
  ASSERT_FALSE(comma_first.ok());
  EXPECT_EQ(comma_first.error().message,
            "not valid YAML: line 1, column 1: unexpected ',' after the document's top-level "
            "value (remove it, or quote the text it starts: a ',' separates items only inside "
            "[ ] or { })");

  const std::string json =
      R"({"apiVersion": "v1", "kind": "Config", "current-context": "dev",)"
      R"( "contexts": [{"name": "dev", "context": {"cluster": "kind"}}],)"
      R"( "clusters": [{"name": "kind", "cluster": {"server": "https://127.0.0.1:6443"}}]})";
  ASSERT_TRUE(parse_kubeconfig(json, "/tmp").ok());
  auto trailing_comma = parse_kubeconfig(json + "\n,\n", "/tmp");
  ASSERT_FALSE(trailing_comma.ok());
  EXPECT_EQ(trailing_comma.error().message.rfind(
                "not valid YAML: line 2, column 1: unexpected ',' after the document's", 0),
            0u)
      << trailing_comma.error().message;
}

}  // namespace
}  // namespace h2mesh::discovery::k8s
