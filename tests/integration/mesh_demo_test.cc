// `h2mesh demo --mesh` end to end, as root: the table it prints tells the story (one pod without
// the sidecar, all four with it), its exit code says so, and it leaves no namespace behind,
// also when interrupted. Without root it says it needs root.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "common/subprocess.h"
#include "harness.h"
#include "lab/lab.h"

namespace {

using h2mesh::Subprocess;
using h2mesh_test::bin_dir;

constexpr auto kDemoTimeout = std::chrono::seconds(100);

// The namespaces a demo process made are named h2lab-<its pid>-...
std::vector<std::string> namespaces_of(pid_t pid) {
  return h2mesh::lab::netns_with_prefix("h2lab-" + std::to_string(pid) + "-");
}

struct Row {
  int before = -1, after = -1;
};

// The before/after table: "  <id>  <before>  <after>" for greeter-N and "failed".
std::map<std::string, Row> table(const std::string& out) {
  std::map<std::string, Row> rows;
  std::regex row(R"(^  (greeter-\d|failed) +(\d+) +(\d+)$)");
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, row)) rows[m[1]] = {std::stoi(m[2]), std::stoi(m[3])};
  }
  return rows;
}

class MeshDemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: the demo builds network namespaces";
    dir_ = h2mesh_test::make_temp_dir();
  }
  std::string dir_;
};

TEST_F(MeshDemoTest, SidecarSpreadsTheCallsThatKubeProxyPinnedToOnePod) {
  auto p = Subprocess::spawn({bin_dir() + "/h2mesh", "demo", "--mesh"}, dir_, "demo");
  ASSERT_TRUE(p.ok());
  auto code = (*p)->wait(kDemoTimeout);
  const std::string out = (*p)->read_all(Subprocess::Stream::Stdout);
  const std::string err = (*p)->read_all(Subprocess::Stream::Stderr);
  ASSERT_TRUE(code.has_value()) << "still running after 100 s\n" << out << err;
  EXPECT_EQ(*code, 0) << out << err;

  auto rows = table(out);
  ASSERT_EQ(rows.size(), 5u) << out;
  int pinned_to = 0;
  for (int i = 1; i <= 4; ++i) {
    const Row& r = rows["greeter-" + std::to_string(i)];
    // Without the sidecar: the one connection went to one pod, which answered every call.
    EXPECT_TRUE(r.before == 0 || r.before == 24) << out;
    pinned_to += r.before == 24;
    // With it: each pod answered its share of the 24 calls, 6 ± 1.
    EXPECT_GE(r.after, 5) << out;
    EXPECT_LE(r.after, 7) << out;
  }
  EXPECT_EQ(pinned_to, 1) << out;
  EXPECT_EQ(rows["failed"].before, 0) << out;
  EXPECT_EQ(rows["failed"].after, 0) << out;
  EXPECT_NE(out.find("[client]$ h2mesh iptables install"), std::string::npos) << out;
  // Between the sidecars: mTLS, and every call seen under the client's SPIFFE ID.
  EXPECT_NE(out.find("sidecars saw all 24 calls from "
                     "spiffe://cluster.local/ns/grpcdemo/sa/greeter-client"),
            std::string::npos)
      << out;
  EXPECT_TRUE(namespaces_of((*p)->pid()).empty());
}

TEST_F(MeshDemoTest, InterruptedDemoRemovesWhatItMade) {
  auto p = Subprocess::spawn({bin_dir() + "/h2mesh", "demo", "--mesh"}, dir_, "demo");
  ASSERT_TRUE(p.ok());
  // Once the pods run: the namespaces exist and processes run in them.
  auto line = (*p)->wait_for_line(
      Subprocess::Stream::Stdout,
      [](const std::string& l) { return l.find(" client: /etc/hosts has ") != std::string::npos; },
      std::chrono::seconds(60));
  ASSERT_TRUE(line.has_value()) << (*p)->read_all(Subprocess::Stream::Stderr);
  EXPECT_FALSE(namespaces_of((*p)->pid()).empty());
  (*p)->send_signal(SIGINT);
  auto code = (*p)->wait(std::chrono::seconds(60));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 130) << (*p)->read_all(Subprocess::Stream::Stderr);
  EXPECT_TRUE(namespaces_of((*p)->pid()).empty());
  EXPECT_NE((*p)->read_all(Subprocess::Stream::Stderr).find("interrupted"), std::string::npos);
}

TEST_F(MeshDemoTest, WithoutRootItSaysSo) {
  const std::string setpriv = h2mesh::lab::find_tool("setpriv");
  if (setpriv.empty()) GTEST_SKIP() << "no setpriv (util-linux) to drop root";
  auto p = Subprocess::spawn({setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                              bin_dir() + "/h2mesh", "demo", "--mesh"},
                             dir_, "demo-nobody");
  ASSERT_TRUE(p.ok());
  auto code = (*p)->wait(std::chrono::seconds(10));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE((*p)->read_all(Subprocess::Stream::Stderr).find("h2mesh demo --mesh: needs root"),
            std::string::npos)
      << (*p)->read_all(Subprocess::Stream::Stderr);
  EXPECT_TRUE(namespaces_of((*p)->pid()).empty());
}

}  // namespace
