// `h2mesh inject`, `uninject` and `wait-ready` run as a user runs them: manifests from a file or
// stdin, the result on stdout, skipped documents as warnings on stderr, errors with exit code 1
// naming the document and the field, command-line mistakes with exit code 2.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "harness.h"

namespace h2mesh_test {
namespace {

const std::string kDeployment =
    "# the web tier\n"
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n"
    "    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: "
    "web\n"
    "    spec:\n      containers:\n        - name: web\n          image: nginx:1.25\n";
const std::string kService = "apiVersion: v1\nkind: Service\nmetadata: {name: web}  # kept\n";
const std::string kHostNetwork =
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: node-probe\nspec:\n  hostNetwork: true\n"
    "  containers:\n    - name: probe\n      image: probe:1\n";

class InjectCliTest : public ::testing::Test {
 protected:
  h2mesh::CommandOutput h2mesh(const std::vector<std::string>& args,
                               const std::string& input = {}) {
    std::vector<std::string> argv = {bin_dir() + "/h2mesh"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = h2mesh::run_command(argv, input);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : h2mesh::CommandOutput{};
  }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::string dir_ = make_temp_dir();
};

TEST_F(InjectCliTest, InjectsAFileAndKeepsOtherDocumentsByteForByte) {
  const std::string manifest = kDeployment + "---\n" + kService;
  auto r = h2mesh({"inject", "-f", write("app.yaml", manifest)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("# the web tier\napiVersion: apps/v1\n")) << r.out;
  EXPECT_NE(r.out.find("- name: h2mesh-proxy"), std::string::npos);
  EXPECT_NE(r.out.find("restartPolicy: Always"), std::string::npos);
  EXPECT_TRUE(r.out.ends_with("---\n" + kService)) << r.out;
  EXPECT_EQ(r.err, "");
  // Injecting the output again changes nothing, and says why on stderr.
  auto again = h2mesh({"inject"}, r.out);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
  EXPECT_NE(again.err.find("document 1 (Deployment/web): already injected"), std::string::npos)
      << again.err;
  // uninject gives the original back (this one is written in the emitter's style).
  auto back = h2mesh({"uninject", "-f", "-"}, r.out);
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, manifest);
}

TEST_F(InjectCliTest, SkippedDocumentIsAWarningNamingIt) {
  auto r = h2mesh({"inject", "-f", "-"}, kHostNetwork);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kHostNetwork);
  EXPECT_NE(r.err.find("h2mesh inject: stdin: document 1 (Pod/node-probe): skipped: hostNetwork"),
            std::string::npos)
      << r.err;
}

TEST_F(InjectCliTest, LegacySidecarSkipsJobsAndSaysWhatItLoses) {
  const std::string job =
      "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\nspec:\n  template:\n"
      "    spec:\n      restartPolicy: Never\n      containers:\n        - name: once\n";
  auto r = h2mesh({"inject", "--legacy-sidecar"}, kDeployment + "---\n" + job);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("# h2mesh legacy sidecar: ")) << r.out;
  EXPECT_NE(r.out.find("wait-ready"), std::string::npos);
  EXPECT_TRUE(r.out.ends_with("---\n" + job));
  EXPECT_NE(r.err.find("document 2 (Job/once): skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("native sidecars"), std::string::npos) << r.err;
}

TEST_F(InjectCliTest, ImageAndJsonOutput) {
  auto r = h2mesh({"inject", "--image", "registry.example/h2mesh:dev", "--output", "json"},
                  kDeployment + "---\n" + kService);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t newline = r.out.find('\n');
  ASSERT_NE(newline, std::string::npos);
  EXPECT_NE(r.out.substr(0, newline).find(R"("image":"registry.example/h2mesh:dev")"),
            std::string::npos);
  EXPECT_EQ(r.out.substr(newline + 1),
            R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"web"}})"
            "\n");
}

TEST_F(InjectCliTest, BadAnnotationIsAnErrorAndNothingIsWritten) {
  std::string bad = kDeployment;
  bad.replace(bad.find("      labels:"), 0,
              "      annotations:\n        h2mesh.io/skip-outbound-ports: \"5432,x\"\n");
  auto r = h2mesh({"inject", "-f", write("bad.yaml", kService + "---\n" + bad)});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("document 2 (Deployment/web)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("h2mesh.io/skip-outbound-ports"), std::string::npos) << r.err;
}

TEST_F(InjectCliTest, SyntaxErrorAndMissingFileExitOne) {
  auto r = h2mesh({"inject"}, "kind: ConfigMap\n---\nspec: [1,\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("document 2: line"), std::string::npos) << r.err;
  r = h2mesh({"uninject", "-f", dir_ + "/missing.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.yaml"), std::string::npos) << r.err;
}

TEST_F(InjectCliTest, UsageMistakesExitTwo) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"inject", "--output", "xml"},
        {"inject", "--legacy"},
        {"uninject", "--legacy-sidecar"},
        {"inject", "extra"},
        {"wait-ready", "--timeout", "soon"},
        {"wait-ready", "--admin", "nowhere"}}) {
    auto r = h2mesh(args);
    EXPECT_EQ(r.exit_code, 2) << args[1] << ": " << r.err;
    EXPECT_EQ(r.out, "");
  }
}

// Clusters without cert-manager: `--mtls-source secret` mounts each pod's service-account
// Secret (deploy/mesh-certs/make-mesh-certs.sh writes them); the flags' mistakes are usage errors
// naming the flag, for inject and webhook alike.
TEST_F(InjectCliTest, MtlsSourceSecretMountsTheServiceAccountsSecret) {
  std::string deployment = kDeployment;
  deployment.replace(deployment.find("      containers:"), 0,
                     "      serviceAccountName: web-frontend\n");
  auto r = h2mesh({"inject", "--mtls-source", "secret", "--mtls-secret-prefix", "mesh-",
                   "--output", "json"},
                  deployment);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json volumes =
      nlohmann::json::parse(r.out)["spec"]["template"]["spec"]["volumes"];
  EXPECT_EQ(volumes.back(), nlohmann::json::parse(R"({"name":"h2mesh-tls","secret":{
                "secretName":"mesh-web-frontend","defaultMode":292}})"));
  // The default prefix, and the default source (the csi-driver).
  r = h2mesh({"inject", "--mtls-source", "secret"}, deployment);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("secretName: h2mesh-mesh-tls-web-frontend"), std::string::npos) << r.out;
  r = h2mesh({"inject"}, deployment);
  EXPECT_NE(r.out.find("driver: csi.cert-manager.io"), std::string::npos) << r.out;

  for (const std::string command : {"inject", "webhook"}) {
    std::vector<std::string> base = {command};
    if (command == "webhook") base = {"webhook", "--cert", "c.pem", "--key", "k.pem"};
    auto with = [&](std::vector<std::string> extra) {
      std::vector<std::string> args = base;
      args.insert(args.end(), extra.begin(), extra.end());
      return h2mesh(args);
    };
    r = with({"--mtls-source", "secrets"});
    EXPECT_EQ(r.exit_code, 2) << command;
    EXPECT_NE(r.err.find("--mtls-source: 'secrets' is not csi or secret (did you mean secret?)"),
              std::string::npos)
        << r.err;
    r = with({"--mtls-secret-prefix", "mesh-"});
    EXPECT_EQ(r.exit_code, 2) << command;
    EXPECT_NE(r.err.find("--mtls-secret-prefix needs --mtls-source secret"), std::string::npos)
        << r.err;
    r = with({"--mtls-source", "secret", "--mtls-secret-prefix", "Mesh_"});
    EXPECT_EQ(r.exit_code, 2) << command;
    EXPECT_NE(r.err.find("--mtls-secret-prefix: 'Mesh_' cannot begin a Secret name"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.out, "");
  }
}

// Cluster-wide observability defaults: `inject --otlp-endpoint ... --access-log stdout` reach
// the sidecar's env unless the pod's annotation says "off"; their mistakes are usage errors
// naming the flag, for inject and webhook alike; and `run --mesh` refuses a bad value of the
// env they become, naming the flag too.
TEST_F(InjectCliTest, ObservabilityDefaultsReachTheSidecarAndBadValuesNameTheFlag) {
  auto env_of = [](const std::string& out) {
    const nlohmann::json pod = nlohmann::json::parse(out);
    std::map<std::string, std::string> env;
    for (const auto& e : pod["spec"]["initContainers"][1]["env"])
      if (e.contains("value")) env[e["name"]] = e["value"];
    return env;
  };
  const std::string pod = "kind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: app\n";
  auto r = h2mesh({"inject", "--otlp-endpoint", "http://10.96.0.40:4318", "--trace-sample-ratio",
                   "0.2", "--access-log", "stdout", "--output", "json"},
                  pod);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto env = env_of(r.out);
  EXPECT_EQ(env["H2MESH_OTLP_ENDPOINT"], "http://10.96.0.40:4318");
  EXPECT_EQ(env["H2MESH_TRACE_SAMPLE_RATIO"], "0.2");
  EXPECT_EQ(env["H2MESH_ACCESS_LOG"], "stdout");
  const std::string opted_out =
      "kind: Pod\nmetadata:\n  name: p\n  annotations:\n"
      "    h2mesh.io/otlp-endpoint: \"off\"\n    h2mesh.io/access-log: \"off\"\n"
      "spec:\n  containers:\n    - name: app\n";
  r = h2mesh({"inject", "--otlp-endpoint", "http://10.96.0.40:4318", "--access-log", "stdout",
              "--output", "json"},
             opted_out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  env = env_of(r.out);
  EXPECT_EQ(env.count("H2MESH_OTLP_ENDPOINT") + env.count("H2MESH_ACCESS_LOG"), 0u) << r.out;

  for (const std::string command : {"inject", "webhook"}) {
    std::vector<std::string> base = {command};
    if (command == "webhook") base = {"webhook", "--cert", "c.pem", "--key", "k.pem"};
    for (const auto& [flag, value] :
         {std::pair<std::string, std::string>{"--otlp-endpoint", "https://collector:4318"},
          {"--trace-sample-ratio", "1.1"},
          {"--access-log", "/var/log/access.log"}}) {
      std::vector<std::string> args = base;
      args.insert(args.end(), {flag, value});
      r = h2mesh(args);
      EXPECT_EQ(r.exit_code, 2) << command << " " << flag;
      EXPECT_NE(r.err.find("h2mesh " + command + ": " + flag + ": "), std::string::npos) << r.err;
      EXPECT_EQ(r.out, "");
    }
  }

  for (const auto& [variable, flag] :
       {std::pair<std::string, std::string>{"H2MESH_OTLP_ENDPOINT=collector:4318",
                                            "--otlp-endpoint"},
        {"H2MESH_TRACE_SAMPLE_RATIO=half", "--trace-sample-ratio"},
        {"H2MESH_ACCESS_LOG_FORMAT=yaml", "--access-log-format"}}) {
    auto bad = h2mesh::run_command({"/usr/bin/env", variable, bin_dir() + "/h2mesh", "run", "--mesh"});
    ASSERT_TRUE(bad.ok());
    EXPECT_EQ(bad->exit_code, 2) << variable;
    EXPECT_NE(bad->err.find("h2mesh run: " + flag + ": "), std::string::npos) << bad->err;
  }
  // Without --mesh they are refused, as every mesh setting is.
  r = h2mesh({"run", "--config", "x.yaml", "--access-log", "stdout"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--access-log is a mesh setting: add --mesh"), std::string::npos) << r.err;
}

// What the injected containers run is accepted by this h2mesh: the init container's flags
// (with both skip annotations) by `iptables install --dry-run`, the proxy's environment by
// `run --mesh` (a bad H2MESH_OPAQUE_PORTS is refused naming the flag, as the annotation is).
TEST_F(InjectCliTest, InjectedCommandLinesAreAcceptedByH2mesh) {
  const std::string pod =
      "kind: Pod\nmetadata:\n  name: p\n  annotations:\n"
      "    h2mesh.io/skip-outbound-ports: \"5432,6379\"\n"
      "    h2mesh.io/skip-outbound-cidrs: \"10.0.0.0/8,fd00::/8\"\n"
      "spec:\n  containers:\n    - name: app\n";
  auto injected = h2mesh({"inject", "--output", "json"}, pod);
  ASSERT_EQ(injected.exit_code, 0) << injected.err;
  const nlohmann::json spec = nlohmann::json::parse(injected.out)["spec"];
  ASSERT_EQ(spec["initContainers"][0]["name"], "h2mesh-init");
  std::vector<std::string> args = spec["initContainers"][0]["args"];
  ASSERT_EQ(args.size(), 14u);  // with mesh mTLS (the default): --inbound-port 15006
  EXPECT_EQ(args[0], "iptables");
  args.push_back("--dry-run");
  auto dry = h2mesh(args);
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("--dport 6379 -j RETURN"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("-d 10.0.0.0/8 -j RETURN"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("-A H2MESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"),
            std::string::npos)
      << dry.out;

  // The proxy's mesh mTLS environment is read by `run --mesh`: a bad mode is refused naming it.
  auto mode = h2mesh::run_command({"/usr/bin/env", "H2MESH_MTLS_MODE=strict-ish",
                                   bin_dir() + "/h2mesh", "run", "--mesh"});
  ASSERT_TRUE(mode.ok());
  EXPECT_EQ(mode->exit_code, 2);
  EXPECT_NE(mode->err.find("--mtls-mode"), std::string::npos) << mode->err;

  auto bad = h2mesh::run_command(
      {"/usr/bin/env", "H2MESH_OPAQUE_PORTS=3306,x", bin_dir() + "/h2mesh", "run", "--mesh"});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->exit_code, 2);
  EXPECT_NE(bad->err.find("--opaque-ports"), std::string::npos) << bad->err;
}

TEST_F(InjectCliTest, WaitReadySucceedsOnceTheProxyIsReady) {
  Backend backend = start_backend(dir_, "b1");
  Proxy proxy = start_proxy(dir_, simple_config({backend.address()}, "round_robin"));
  auto r = h2mesh({"wait-ready", "--admin", "127.0.0.1:" + std::to_string(proxy.admin_port),
                   "--timeout", "20s"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(InjectCliTest, WaitReadyFailsWhenNothingAnswers) {
  // A port of our own that nobody listens on: bound, never listening.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t size = sizeof a;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size), 0);
  auto r = h2mesh({"wait-ready", "--admin", "127.0.0.1:" + std::to_string(ntohs(a.sin_port)),
                   "--timeout", "300ms"});
  close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("did not answer 200"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace h2mesh_test
