// The access log end to end inside one process: a worker's observer (sampling with the worker's
// seeded random source), the writer thread draining rings into files and pipes, an output that
// blocks (the worker drops and counts, never waits), failed writes, and the switch to a reopened
// file (SIGUSR1 after logrotate's mv).

#include "observe/access_log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <chrono>

namespace h2mesh::observe {
namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/h2mesh-access-log-XXXXXX";
  const char* dir = mkdtemp(tmpl);
  return dir ? dir : "";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int open_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

proxy::CallEvent call_number(int64_t i) {
  proxy::CallEvent c;
  c.listener = "grpc";
  c.authority = "greeter:50051";
  c.service = "helloworld.Greeter";
  c.method = "SayHello";
  c.grpc_status = 0;
  c.request_bytes = i;  // tells the lines apart
  return c;
}

std::shared_ptr<const LineFormat> format(double ratio, std::vector<std::string> fields = {}) {
  config::AccessLog c;
  c.path = "stdout";
  c.sample_ratio = ratio;
  c.fields = std::move(fields);
  return std::make_shared<const LineFormat>(c);
}

// Logs `calls` calls of ~250 bytes: far more than an unread pipe or socket takes.
void log_calls(AccessLogObserver& observer, int calls) {
  proxy::CallEvent c = call_number(0);
  const std::string padding(200, 'p');
  c.authority = padding;
  for (int i = 0; i < calls; ++i) {
    c.request_bytes = i;
    observer.on_call_end(c);
  }
}

class AccessLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir();
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  std::string dir_;
};

TEST_F(AccessLogTest, EveryCallOfEveryWorkerIsOneLineInTheFile) {
  const std::string path = dir_ + "/access.log";
  {
    AccessLogWriter writer(2, 64 << 10);
    writer.set_output(open_append(path));
    Random r0(1), r1(2);
    AccessLogObserver w0(format(1), writer.ring(0), r0);
    AccessLogObserver w1(format(1), writer.ring(1), r1);
    for (int i = 0; i < 50; ++i) {
      w0.on_call_end(call_number(i));
      w1.on_call_end(call_number(1000 + i));
    }
    writer.flush();
    EXPECT_EQ(writer.counters().lines, 100u);
    EXPECT_EQ(writer.counters().dropped, 0u);
  }
  const std::string text = read_file(path);
  std::istringstream lines(text);
  std::string line;
  std::set<int64_t> seen;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["method"], "SayHello");
    seen.insert(j["request_bytes"].get<int64_t>());
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST_F(AccessLogTest, SamplingDrawsFromTheWorkersRandomSource) {
  AccessLogWriter writer(1, 1 << 20);
  writer.set_output(open_append(dir_ + "/access.log"));
  Random random(42);
  AccessLogObserver observer(format(0.5, {"request_bytes"}), writer.ring(0), random);
  constexpr int kCalls = 2000;
  for (int i = 0; i < kCalls; ++i) observer.on_call_end(call_number(i));
  writer.flush();
  // The same seed replayed: exactly the calls whose draw was under the ratio.
  Random replay(42);
  std::string expected;
  size_t expected_lines = 0;
  for (int i = 0; i < kCalls; ++i) {
    if (replay.unit() < 0.5) {
      expected += "{\"request_bytes\":" + std::to_string(i) + "}\n";
      ++expected_lines;
    }
  }
  EXPECT_EQ(read_file(dir_ + "/access.log"), expected);
  EXPECT_EQ(writer.counters().lines, expected_lines);
  EXPECT_GT(expected_lines, 900u);
  EXPECT_LT(expected_lines, 1100u);
}

TEST_F(AccessLogTest, RatioOneLogsEveryCallWithoutTouchingTheRandomSource) {
  AccessLogWriter writer(1, 1 << 16);
  writer.set_output(open_append(dir_ + "/access.log"));
  Random random(7), untouched(7);
  AccessLogObserver all(format(1), writer.ring(0), random);
  for (int i = 0; i < 10; ++i) all.on_call_end(call_number(i));
  // The balancers share this source: their picks must not change because the log is on.
  EXPECT_EQ(random.next(), untouched.next());
  Random zero_random(7);
  AccessLogObserver none(format(0), writer.ring(0), zero_random);
  for (int i = 0; i < 10; ++i) none.on_call_end(call_number(i));
  writer.flush();
  EXPECT_EQ(writer.counters().lines, 10u);
}

TEST_F(AccessLogTest, BlockedOutputNeverBlocksTheWorkerWhichDropsAndCounts) {
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  fcntl(pipe_fds[1], F_SETPIPE_SZ, 4096);
  constexpr int kCalls = 5000;
  std::string received;
  std::thread reader;
  uint64_t written = 0;
  {
    AccessLogWriter writer(1, 64 << 10);
    writer.set_output(pipe_fds[1]);  // nobody reads yet: the writer blocks in write(2)
    Random random(1);
    AccessLogObserver observer(format(1), writer.ring(0), random);
    // ~1.5 MB of lines against a 64 KiB ring and a 4 KiB pipe: this ends only because a full
    // ring drops instead of waiting for the writer.
    log_calls(observer, kCalls);
    const auto blocked = writer.counters();
    EXPECT_GT(blocked.dropped, 0u);
    EXPECT_LT(blocked.lines, static_cast<uint64_t>(kCalls));
    // Unblock it: every line is written or was counted as dropped, none twice.
    reader = std::thread([&] {
      char buf[65536];
      ssize_t n;
      while ((n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0)
        received.append(buf, static_cast<size_t>(n));
    });
    writer.flush();
    const auto c2 = writer.counters();
    EXPECT_EQ(c2.lines + c2.dropped, static_cast<uint64_t>(kCalls));
    EXPECT_EQ(c2.dropped, blocked.dropped);
    written = c2.lines;
  }  // the writer closes the pipe: the reader sees its end
  reader.join();
  ::close(pipe_fds[0]);
  EXPECT_EQ(received.back(), '\n');
  std::istringstream lines(received);
  std::string line;
  size_t n = 0;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(nlohmann::json::accept(line)) << line;  // whole lines only
    ++n;
  }
  EXPECT_EQ(n, written);
}

TEST_F(AccessLogTest, NewOutputGetsTheLinesAfterTheSwitch) {
  // logrotate: mv access.log access.log.1, then SIGUSR1: h2mesh opens access.log anew.
  const std::string path = dir_ + "/access.log";
  AccessLogWriter writer(1, 1 << 16);
  writer.set_output(open_append(path));
  writer.flush();  // in use (a second switch before the writer's turn would replace it unused)
  Random random(1);
  AccessLogObserver observer(format(1, {"request_bytes"}), writer.ring(0), random);
  for (int i = 0; i < 3; ++i) observer.on_call_end(call_number(i));
  ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
  writer.set_output(open_append(path));
  // Lines queued before the switch still go to the file they were made for; from the writer's
  // turn on (a flush waits for it), lines go to the new file.
  writer.flush();
  for (int i = 3; i < 5; ++i) observer.on_call_end(call_number(i));
  writer.flush();
  EXPECT_EQ(read_file(path + ".1"),
            "{\"request_bytes\":0}\n{\"request_bytes\":1}\n{\"request_bytes\":2}\n");
  EXPECT_EQ(read_file(path), "{\"request_bytes\":3}\n{\"request_bytes\":4}\n");
  EXPECT_EQ(writer.counters().lines, 5u);
}

TEST_F(AccessLogTest, LinesWithoutAnOutputOrWhoseWriteFailsAreCountedAsDropped) {
  AccessLogWriter writer(1, 1 << 16);
  Random random(1);
  AccessLogObserver observer(format(1), writer.ring(0), random);
  observer.on_call_end(call_number(0));  // no output yet
  writer.flush();
  EXPECT_EQ(writer.counters().dropped, 1u);
  const int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);  // every write: ENOSPC
  ASSERT_GE(full, 0);
  writer.set_output(full);
  writer.flush();
  for (int i = 0; i < 3; ++i) observer.on_call_end(call_number(i));
  writer.flush();
  EXPECT_EQ(writer.counters().dropped, 4u);
  EXPECT_EQ(writer.counters().lines, 0u);
}

// A pipe (stdout under a container runtime) or a terminal gets a description of its own, so the
// writer may be non-blocking without touching the process's stdout; a file or a socket gets a
// plain duplicate.
TEST(AccessLogOutput, PipeTwinIsNonBlockingAndLeavesTheOriginalAlone) {
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  const int twin = open_nonblocking_twin(pipe_fds[1]);
  ASSERT_GE(twin, 0);
  EXPECT_NE(fcntl(twin, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ(fcntl(pipe_fds[1], F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(twin, F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(::write(twin, "line\n", 5), 5);
  char buf[8] = {};
  EXPECT_EQ(::read(pipe_fds[0], buf, sizeof(buf)), 5);
  EXPECT_STREQ(buf, "line\n");
  for (int fd : {twin, pipe_fds[0], pipe_fds[1]}) ::close(fd);

  int socks[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks), 0);
  const int dup = open_nonblocking_twin(socks[0]);
  ASSERT_GE(dup, 0);
  EXPECT_EQ(fcntl(dup, F_GETFL) & O_NONBLOCK, 0) << "a socket's shared flags are left as they are";
  for (int fd : {dup, socks[0], socks[1]}) ::close(fd);
}

TEST_F(AccessLogTest, AFifoWithoutAReaderIsRefusedAtOnceNotWaitedFor) {
  const std::string fifo = dir_ + "/log.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto opened = open_access_log(fifo);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().message,
            "access log: " + fifo + " has no reader (a FIFO nobody reads, or a socket)");
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  opened = open_access_log(fifo);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_NE(fcntl(*opened, F_GETFL) & O_NONBLOCK, 0);
  ::close(*opened);
  ::close(reader);
}

// An output whose reader stopped reading (a stuck `| logger`, a wedged log shipper) holds neither
// a reopen (SIGUSR1) nor the process's end: the lines it would not take are counted as dropped.
TEST_F(AccessLogTest, AnOutputThatTakesNothingHoldsNeitherAReopenNorTheEnd) {
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  fcntl(pipe_fds[1], F_SETPIPE_SZ, 4096);
  const int stuck = open_nonblocking_twin(pipe_fds[1]);
  ASSERT_GE(stuck, 0);
  constexpr int kCalls = 2000;
  const std::string path = dir_ + "/access.log";
  auto writer = std::make_unique<AccessLogWriter>(1, 64 << 10);
  writer->set_output(stuck);
  writer->flush();  // in use
  Random random(1);
  AccessLogObserver observer(format(1), writer->ring(0), random);
  log_calls(observer, kCalls);
  // The reopen finds the writer waiting on the pipe: it gives up what it was writing there and
  // what the ring still held for it (counted as dropped), and switches.
  writer->set_output(open_append(path));
  writer->flush();
  observer.on_call_end(call_number(kCalls));
  writer->flush();
  const auto switched = writer->counters();
  EXPECT_EQ(switched.lines + switched.dropped, static_cast<uint64_t>(kCalls + 1));
  EXPECT_GT(switched.dropped, 0u);
  // The new file has whole lines only, the new call's last; the pipe's lines are not repeated.
  const std::string reopened = read_file(path);
  ASSERT_FALSE(reopened.empty());
  ASSERT_EQ(reopened.back(), '\n');
  std::istringstream lines(reopened);
  std::string line, last;
  uint64_t n = 0;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(nlohmann::json::accept(line)) << line;
    last = line;
    ++n;
  }
  EXPECT_EQ(n, 1u) << "only the line logged after the switch";
  EXPECT_GT(switched.lines, n) << "the pipe took some lines before it stopped taking any";
  EXPECT_NE(last.find("\"request_bytes\":2000"), std::string::npos) << last;

  // The end: a socket nobody reads (blocking, as a shared stdout socket would be) is offered
  // lines for a second at most, then the writer stops.
  int socks[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks), 0);
  const int sndbuf = 4096;
  setsockopt(socks[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  writer->set_output(socks[0]);
  writer->flush();
  log_calls(observer, kCalls);
  const auto t0 = std::chrono::steady_clock::now();
  writer.reset();
  const auto took = std::chrono::steady_clock::now() - t0;
  // The grace is one second; five allow for a loaded machine, a hang would never end.
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_GE(took, std::chrono::milliseconds(900)) << "the output had its grace";
  for (int fd : {pipe_fds[0], pipe_fds[1], socks[1]}) ::close(fd);
}

TEST(AccessLogMetrics, CountersInPrometheusText) {
  AccessLogWriter::Counters c;
  c.lines = 12;
  c.dropped = 3;
  const std::string text = render_access_log_metrics(c);
  EXPECT_NE(
      text.find("# TYPE h2mesh_access_log_lines_total counter\nh2mesh_access_log_lines_total 12\n"),
      std::string::npos);
  EXPECT_NE(
      text.find(
          "# TYPE h2mesh_access_log_dropped_total counter\nh2mesh_access_log_dropped_total 3\n"),
      std::string::npos);
}

}  // namespace
}  // namespace h2mesh::observe
