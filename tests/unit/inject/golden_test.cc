// Golden files: what `h2mesh inject` writes for each kind of workload, byte for byte. Run with
// H2MESH_UPDATE_GOLDEN=1 to rewrite them after an intended change, then read the diff.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "inject/manifest_io.h"

namespace h2mesh::inject {
namespace {

std::string golden_path(const std::string& name) {
  return std::string(H2MESH_INJECT_GOLDEN_DIR) + "/" + name;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The seed's demo manifests as a user applies them (`kubectl apply -f deploy/grpcdemo/`): the
// files in name order, as one stream.
std::string grpcdemo_manifests() {
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(H2MESH_GRPCDEMO_DIR))
    if (entry.path().extension() == ".yaml") paths.push_back(entry.path().string());
  std::sort(paths.begin(), paths.end());
  std::string text;
  for (const std::string& path : paths) {
    if (!text.empty()) text += "---\n";
    text += read_file(path);
  }
  return text;
}

// A case's input: golden/<name>.in.yaml, or deploy/grpcdemo/ for "grpcdemo".
std::string input_of(const std::string& name) {
  return name == "grpcdemo" ? grpcdemo_manifests() : read_file(golden_path(name + ".in.yaml"));
}

bool updating() {
  const char* v = getenv("H2MESH_UPDATE_GOLDEN");
  return v && std::string(v) == "1";
}

struct Case {
  const char* name;
  bool legacy;
  bool secret = false;  // --mtls-source secret: certificates from Secrets, not the csi-driver
  // --otlp-endpoint http://otel-collector.observability:4318 --trace-sample-ratio 0.1
  // --access-log stdout: the cluster-wide observability defaults
  bool observe = false;
};

class GoldenTest : public ::testing::TestWithParam<Case> {};

std::string inject_text(const std::string& text, bool legacy, bool secret = false,
                        bool observe = false) {
  Options options;
  options.legacy_sidecar = legacy;
  if (secret) options.mtls_source = MtlsSource::Secret;
  if (observe) {
    options.otlp_endpoint = "http://otel-collector.observability:4318";
    options.trace_sample_ratio = "0.1";
    options.access_log = "stdout";
  }
  auto out = inject_manifest(text, options, OutputFormat::Yaml, nullptr);
  EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error().message);
  return out.ok() ? *out : std::string();
}

TEST_P(GoldenTest, InjectedManifestMatchesGoldenFile) {
  const Case c = GetParam();
  const std::string input = input_of(c.name);
  ASSERT_FALSE(input.empty()) << "missing input for " << c.name;
  const std::string expected_path = golden_path(std::string(c.name) + (c.legacy ? ".legacy" : "") +
                                                (c.secret ? ".secret" : "") +
                                                (c.observe ? ".defaults" : "") + ".out.yaml");
  const std::string out = inject_text(input, c.legacy, c.secret, c.observe);
  if (updating()) {
    std::ofstream(expected_path, std::ios::binary) << out;
    GTEST_SKIP() << "rewrote " << expected_path;
  }
  EXPECT_EQ(out, read_file(expected_path))
      << "golden file " << expected_path << " differs; H2MESH_UPDATE_GOLDEN=1 rewrites it";
}

TEST_P(GoldenTest, InjectingTwiceChangesNothingMore) {
  const Case c = GetParam();
  const std::string input = input_of(c.name);
  const std::string once = inject_text(input, c.legacy, c.secret, c.observe);
  EXPECT_EQ(inject_text(once, c.legacy, c.secret, c.observe), once);
  // The other modes see the same status annotation: no second sidecar.
  if (once != input) {
    EXPECT_EQ(inject_text(once, !c.legacy, c.secret, c.observe), once);
    EXPECT_EQ(inject_text(once, c.legacy, !c.secret, c.observe), once);
    EXPECT_EQ(inject_text(once, c.legacy, c.secret, !c.observe), once);
  }
}

TEST_P(GoldenTest, UninjectGivesBackTheOriginalData) {
  const Case c = GetParam();
  const std::string input = input_of(c.name);
  const std::string injected = inject_text(input, c.legacy, c.secret, c.observe);
  auto uninjected = uninject_manifest(injected, OutputFormat::Json, nullptr);
  ASSERT_TRUE(uninjected.ok()) << uninjected.error().message;
  auto original = uninject_manifest(input, OutputFormat::Json, nullptr);
  ASSERT_TRUE(original.ok()) << original.error().message;
  EXPECT_EQ(*uninjected, *original);
}

INSTANTIATE_TEST_SUITE_P(
    Workloads, GoldenTest,
    ::testing::Values(Case{"pod", false}, Case{"deployment", false}, Case{"statefulset", false},
                      Case{"daemonset", false}, Case{"replicaset", false}, Case{"job", false},
                      Case{"cronjob", false}, Case{"list", false}, Case{"anchors", false},
                      Case{"deployment", true}, Case{"job", true}, Case{"cronjob", true},
                      Case{"grpcdemo", false}, Case{"grpcdemo", true},
                      Case{"grpcdemo", false, true}, Case{"serviceaccounts", false},
                      Case{"serviceaccounts", false, true}, Case{"serviceaccounts", true, true},
                      Case{"observability", false}, Case{"observability", false, false, true}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(info.param.name) + (info.param.legacy ? "_legacy" : "") +
             (info.param.secret ? "_secret" : "") + (info.param.observe ? "_defaults" : "");
    });

// Written in the emitter's own style and without comments, a manifest comes back from
// inject + uninject as the same text, not only the same data.
TEST(GoldenRoundTrip, UninjectRestoresTextWrittenInTheEmittersStyle) {
  for (const char* name : {"pod", "statefulset", "daemonset", "job"}) {
    const std::string input = read_file(golden_path(std::string(name) + ".in.yaml"));
    for (bool legacy : {false, true}) {
      auto back = uninject_manifest(inject_text(input, legacy), OutputFormat::Yaml, nullptr);
      ASSERT_TRUE(back.ok()) << back.error().message;
      EXPECT_EQ(*back, input) << name << (legacy ? " (legacy)" : "");
    }
  }
}

}  // namespace
}  // namespace h2mesh::inject
