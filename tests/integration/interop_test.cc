// Other gRPC stacks through h2mesh: the Python (grpcio, C-core) and Node (@grpc/grpc-js) clients
// of tests/interop, each over one channel to a proxy in front of four greeters (round robin).

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace h2mesh_test {
namespace {

constexpr int kCalls = 40;
constexpr int kBackends = 4;
// Each client makes kCalls unary calls, a 4 MiB server stream and a bidi call, each with a 10 s
// deadline: this bounds the whole run (well inside ctest's 120 s per test).
constexpr auto kClientTimeout = std::chrono::seconds(80);

std::string source_dir() { return H2MESH_SOURCE_DIR; }

// `name` looked up in $PATH (Subprocess uses execv, which does not search it).
std::optional<std::string> find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// How an interop client ended, and what it printed.
struct ClientReport : InteropReport {
  std::optional<int> exit_code;  // nullopt: still running at the timeout (then killed)
  std::string stderr_text;

  std::string describe() const {
    return "exit code " + (exit_code ? std::to_string(*exit_code) : std::string("(timed out)")) +
           "\nstdout JSON: " + json + "\nstderr:\n" + stderr_text;
  }
};

// Runs one client to completion (or kClientTimeout) with its logs in `dir`.
ClientReport run_client(const std::vector<std::string>& argv, const std::string& dir,
                        const std::string& name) {
  ClientReport report;
  auto process = Subprocess::spawn(argv, dir, name);
  if (!process.ok()) {
    report.stderr_text = "cannot start " + argv[0] + ": " + process.error().message;
    return report;
  }
  report.exit_code = (*process)->wait(kClientTimeout);
  report.stderr_text = (*process)->read_all(Subprocess::Stream::Stderr);
  static_cast<InteropReport&>(report) =
      parse_interop_report((*process)->read_all(Subprocess::Stream::Stdout));
  return report;
}

class InteropTest : public ProxyTest {
 protected:
  void SetUp() override {
    start_backends(kBackends);
    start(simple_config(endpoints(), "round_robin"));
    ASSERT_NE(proxy_.port, 0) << "the proxy did not start";
  }

  // The client's report says every call succeeded, and that round robin over its one
  // connection gave each backend the same share of the unary calls.
  void expect_everything_served(const ClientReport& r) {
    ASSERT_TRUE(r.exit_code.has_value())
        << "client still running after " << kClientTimeout.count() << " s\n"
        << r.describe();
    EXPECT_EQ(*r.exit_code, 0) << r.describe();
    ASSERT_FALSE(r.json.empty()) << "no JSON line on stdout\n" << r.describe();
    EXPECT_EQ(r.ok, std::optional(kCalls)) << r.describe();
    EXPECT_EQ(r.failed, std::optional(0)) << r.describe();
    std::map<std::string, int> even;
    for (const Backend& b : backends_) even[b.id] = kCalls / kBackends;
    EXPECT_EQ(r.backends, even) << r.describe();
    EXPECT_EQ(r.stream_ok, std::optional(true)) << r.describe();
    EXPECT_EQ(r.bidi_ok, std::optional(true)) << r.describe();

    // All of it went over one client connection (the client's single channel).
    auto [code, metrics] = http_get(proxy_.admin_port, "/metrics");
    EXPECT_EQ(code, 200);
    EXPECT_NE(metrics.find("\nh2mesh_downstream_connections_total 1\n"), std::string::npos)
        << metrics;
    EXPECT_TRUE(proxy_.process->running()) << "h2mesh exited";
  }
};

TEST_F(InteropTest, PythonGrpcioCallsSpreadOverFourBackends) {
  ClientReport r = run_client({"/usr/bin/python3", source_dir() + "/tests/interop/python_client.py",
                               "--target", proxy_.target(), "-n", std::to_string(kCalls)},
                              dir_, "python_client");
  expect_everything_served(r);
}

TEST_F(InteropTest, NodeGrpcJsCallsSpreadOverFourBackends) {
  const std::string node_dir = source_dir() + "/tests/interop/node";
  ASSERT_TRUE(std::filesystem::is_directory(node_dir + "/node_modules/@grpc/grpc-js"))
      << node_dir << "/node_modules is missing: run `npm ci --prefix tests/interop/node` "
      << "in " << source_dir() << " first";
  auto node = find_in_path("node");
  ASSERT_TRUE(node.has_value()) << "`node` (>= 20) is not on PATH";
  ClientReport r = run_client(
      {*node, node_dir + "/client.js", "--target", proxy_.target(), "-n", std::to_string(kCalls)},
      dir_, "node_client");
  expect_everything_served(r);
}

// The Python client builds its message types by hand (no grpc_tools here): they must stay the
// same as helloworld.proto, or the test above would prove nothing about the real schema.
TEST(InteropClients, PythonDescriptorMatchesHelloworldProto) {
  ASSERT_TRUE(find_in_path("protoc").has_value()) << "protoc is not on PATH";
  ClientReport r =
      run_client({"/usr/bin/python3", source_dir() + "/tests/interop/python_client.py",
                  "--check-proto", source_dir() + "/examples/greeter/helloworld.proto"},
                 make_temp_dir(), "check_proto");
  ASSERT_TRUE(r.exit_code.has_value()) << r.describe();
  EXPECT_EQ(*r.exit_code, 0) << r.describe();
}

}  // namespace
}  // namespace h2mesh_test
