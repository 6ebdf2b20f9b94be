// The access log of a real h2mesh process in front of real greeter backends: one line per call
// with its status and endpoint, sampling, SIGUSR1 after logrotate's mv, reload turning it on,
// changing its format and turning it off.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "harness.h"

namespace h2mesh_test {
namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

size_t count_in_stderr(Subprocess& p, const std::string& needle) {
  const std::string err = p.read_all(Subprocess::Stream::Stderr);
  size_t n = 0;
  for (size_t at = err.find(needle); at != std::string::npos; at = err.find(needle, at + 1)) ++n;
  return n;
}

// `code` 0: OK; else the backend answers that status (x-fail-code).
grpc::StatusCode call(helloworld::Greeter::Stub& stub, int code = 0) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (code) ctx.AddMetadata("x-fail-code", std::to_string(code));
  helloworld::HelloRequest req;
  req.set_name("log");
  helloworld::HelloReply reply;
  return stub.SayHello(&ctx, req, &reply).error_code();
}

class AccessLogTest : public ProxyTest {
 protected:
  std::string log_path() const { return dir_ + "/access.log"; }
  std::string access_log_yaml(const std::string& more = "") const {
    return "access_log:\n  path: " + log_path() + "\n" + more;
  }
  bool wait_lines(const std::string& path, size_t n) {
    return eventually([&] { return lines_of(path).size() >= n; }, std::chrono::seconds(10));
  }
  void rewrite(const std::string& yaml) {
    const std::string tmp = proxy_.config_path + ".new";
    std::ofstream(tmp) << yaml;
    ASSERT_EQ(std::rename(tmp.c_str(), proxy_.config_path.c_str()), 0);
  }
};

TEST_F(AccessLogTest, EveryCallIsOneLineWithItsStatusAndEndpoint) {
  start_backends(2);
  start(simple_config(endpoints(), "round_robin", 2, "", access_log_yaml()));
  auto s = stub();
  for (int i = 0; i < 10; ++i) ASSERT_EQ(call(*s), grpc::StatusCode::OK);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(call(*s, 7), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(wait_lines(log_path(), 13)) << lines_of(log_path()).size();
  const auto lines = lines_of(log_path());
  ASSERT_EQ(lines.size(), 13u);
  std::map<int, int> by_status;
  std::set<std::string> upstreams;
  for (const auto& line : lines) {
    auto j = nlohmann::json::parse(line);
    by_status[j["grpc_status"].get<int>()]++;
    upstreams.insert(j["upstream"].get<std::string>());
    EXPECT_EQ(j["listener"], "grpc");
    EXPECT_EQ(j["authority"], proxy_.target());
    EXPECT_EQ(j["service"], "helloworld.Greeter");
    EXPECT_EQ(j["method"], "SayHello");
    EXPECT_EQ(j["cluster"], "greeter");
    EXPECT_EQ(j["attempts"], 1);
    EXPECT_GT(j["request_bytes"].get<int>(), 0);
    EXPECT_GE(j["duration"].get<double>(), j["upstream_duration"].get<double>());
    EXPECT_EQ(j["time"].get<std::string>().size(), 24u);  // 2026-01-02T03:04:05.678Z
  }
  EXPECT_EQ(by_status, (std::map<int, int>{{0, 10}, {7, 3}}));
  const std::vector<std::string> eps = endpoints();
  EXPECT_EQ(upstreams, std::set<std::string>(eps.begin(), eps.end()));
  EXPECT_EQ(metric(proxy_.admin_port, "h2mesh_access_log_lines_total"), 13u);
  EXPECT_EQ(metric(proxy_.admin_port, "h2mesh_access_log_dropped_total"), 0u);
}

TEST_F(AccessLogTest, HalfSampleRatioLogsAboutHalfTheCalls) {
  start_backends(1);
  start(simple_config(endpoints(), "round_robin", 1, "",
                      access_log_yaml("  sample_ratio: 0.5\n  fields: [grpc_status]\n")));
  auto s = stub();
  constexpr int kCalls = 400;
  for (int i = 0; i < kCalls; ++i) ASSERT_EQ(call(*s), grpc::StatusCode::OK);
  // Every call has ended: the metric settles once the writer's turn took the last lines.
  uint64_t written = 0;
  ASSERT_TRUE(eventually(
      [&] {
        const auto before = metric(proxy_.admin_port, "h2mesh_access_log_lines_total");
        std::this_thread::sleep_for(std::chrono::milliseconds(250));  // > one writer turn
        const auto now = metric(proxy_.admin_port, "h2mesh_access_log_lines_total");
        written = now.value_or(0);
        return now.has_value() && now == before;
      },
      std::chrono::seconds(10)));
  // Binomial(400, 0.5): 200 ± 10; ±60 is six standard deviations.
  EXPECT_GE(written, 140u);
  EXPECT_LE(written, 260u);
  EXPECT_EQ(lines_of(log_path()).size(), written);
  for (const auto& line : lines_of(log_path())) EXPECT_EQ(line, "{\"grpc_status\":0}");
}

TEST_F(AccessLogTest, Sigusr1AfterMoveWritesTheNextLinesToANewFile) {
  start_backends(1);
  start(simple_config(endpoints(), "round_robin", 1, "", access_log_yaml()));
  auto s = stub();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(call(*s), grpc::StatusCode::OK);
  ASSERT_TRUE(wait_lines(log_path(), 3));
  const std::string rotated = log_path() + ".1";
  ASSERT_EQ(std::rename(log_path().c_str(), rotated.c_str()), 0);
  proxy_.process->send_signal(SIGUSR1);
  ASSERT_TRUE(eventually([&] { return count_in_stderr(*proxy_.process, "reopened") == 1; },
                         std::chrono::seconds(10)));
  for (int i = 0; i < 2; ++i) ASSERT_EQ(call(*s), grpc::StatusCode::OK);
  ASSERT_TRUE(wait_lines(log_path(), 2));
  EXPECT_EQ(lines_of(log_path()).size(), 2u);
  EXPECT_EQ(lines_of(rotated).size(), 3u);
  EXPECT_TRUE(proxy_.process->running());  // SIGUSR1's default action would have ended it
}

// A log shipper that stops reading (here a FIFO whose reader never reads): the calls go on at
// full speed, the lines that do not fit are dropped and counted, and SIGTERM still ends the
// process: the writer offers its last lines for a second, then gives up.
TEST_F(AccessLogTest, AReaderThatStopsReadingSlowsNoCallAndHoldsNoExit) {
  start_backends(1);
  const std::string fifo = dir_ + "/access.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  ::fcntl(reader, F_SETPIPE_SZ, 4096);
  start(simple_config(endpoints(), "round_robin", 1, "",
                      "drain_timeout: 200ms\naccess_log:\n  path: " + fifo +
                          "\n  queue_bytes: 64KiB\n"));
  auto s = stub();
  constexpr int kCalls = 1000;  // ~300 KB of lines for 4 KiB of pipe and 64 KiB of queue
  for (int i = 0; i < kCalls; ++i) ASSERT_EQ(call(*s), grpc::StatusCode::OK) << "call " << i;
  EXPECT_TRUE(eventually(
      [&] { return metric(proxy_.admin_port, "h2mesh_access_log_dropped_total").value_or(0) > 0; },
      std::chrono::seconds(5)));
  const auto t0 = std::chrono::steady_clock::now();
  proxy_.process->send_signal(SIGTERM);
  const auto exit = proxy_.process->wait(std::chrono::seconds(15));
  ASSERT_TRUE(exit.has_value()) << "h2mesh did not exit: the access log's writer is stuck";
  EXPECT_EQ(*exit, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(count_in_stderr(*proxy_.process, "access log: the output took nothing"), 1u)
      << proxy_.process->read_all(Subprocess::Stream::Stderr);
  ::close(reader);
}

TEST_F(AccessLogTest, ReloadTurnsItOnChangesItAndTurnsItOff) {
  start_backends(1);
  const std::string plain = simple_config(endpoints(), "round_robin", 2);
  start(plain);
  auto s = stub();
  ASSERT_EQ(call(*s), grpc::StatusCode::OK);
  rewrite(simple_config(endpoints(), "round_robin", 2, "", access_log_yaml()));
  ASSERT_TRUE(
      eventually([&] { return count_in_stderr(*proxy_.process, "configuration reloaded") == 1; },
                 std::chrono::seconds(10)));
  ASSERT_EQ(call(*s), grpc::StatusCode::OK);
  ASSERT_TRUE(wait_lines(log_path(), 1));
  rewrite(simple_config(endpoints(), "round_robin", 2, "",
                        access_log_yaml("  format: text\n  fields: [method, grpc_status]\n")));
  ASSERT_TRUE(
      eventually([&] { return count_in_stderr(*proxy_.process, "configuration reloaded") == 2; },
                 std::chrono::seconds(10)));
  ASSERT_EQ(call(*s), grpc::StatusCode::OK);
  ASSERT_TRUE(wait_lines(log_path(), 2));
  EXPECT_EQ(lines_of(log_path())[1], "method=SayHello grpc_status=0");
  rewrite(plain);
  ASSERT_TRUE(eventually([&] { return count_in_stderr(*proxy_.process, "access log: off") == 1; },
                         std::chrono::seconds(10)));
  // The file is closed once every worker stopped logging; calls from then on leave no line.
  ASSERT_TRUE(eventually(
      [&] {
        const std::string fds = "/proc/" + std::to_string(proxy_.process->pid()) + "/fd";
        for (const auto& e : std::filesystem::directory_iterator(fds)) {
          std::error_code ec;
          if (std::filesystem::read_symlink(e.path(), ec) == log_path()) return false;
        }
        return true;
      },
      std::chrono::seconds(10)));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(call(*s), grpc::StatusCode::OK);
  EXPECT_EQ(lines_of(log_path()).size(), 2u);
}

}  // namespace
}  // namespace h2mesh_test
