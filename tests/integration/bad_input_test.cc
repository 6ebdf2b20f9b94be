// Bad input gets a clear error or a GOAWAY, and other clients keep being served: malformed
// configs, clients that do not speak HTTP/2, broken frames, random bytes and idle connections
// against a real h2mesh process.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "raw_h2.h"

namespace h2mesh_test {
namespace {

using namespace std::chrono_literals;

class BadInputTest : public MisbehavingClientTest {};

// ---- Malformed configuration ------------------------------------------------------------------

// Six mistakes, one per line listed in kConfigErrors.
constexpr char kBadConfig[] =
    "workers: 1\n"                          // 1
    "admin:\n"                              // 2
    "  address: \"127.0.0.1:0\"\n"          // 3
    "listeners:\n"                          // 4
    "  - name: grpc\n"                      // 5
    "    address: \"localhost:0\"\n"        // 6  hostname, not an IP
    "    routes:\n"                         // 7
    "      - cluster: greter\n"             // 8  unknown cluster (typo)
    "clusters:\n"                           // 9
    "  - name: greeter\n"                   // 10
    "    lb_policy: round_robbin\n"         // 11 unknown policy (typo)
    "    connect_timeout: 1.5s\n"           // 12 not whole milliseconds
    "    max_conections_per_endpoint: 4\n"  // 13 unknown key (typo)
    "    endpoints:\n"                      // 14
    "      - \"127.0.0.1:0\"\n";            // 15 endpoint port 0

struct ExpectedError {
  int line;
  const char* message;  // a regex fragment of the message
  const char* hint;     // a regex fragment of the hint
};

constexpr ExpectedError kConfigErrors[] = {
    {6, "localhost", "IP address"},
    {8, "unknown cluster 'greter'", "did you mean 'greeter'"},
    {11, "round_robbin", "did you mean 'round_robin'"},
    {12, "1\\.5s", "1500ms"},
    {13, "max_conections_per_endpoint", "max_connections_per_endpoint"},
    {15, "port 0", "1\\.\\.65535"},
};

class BadConfigTest : public ProxyTest {
 protected:
  std::string write_bad_config() {
    std::string path = dir_ + "/bad.yaml";
    std::ofstream(path) << kBadConfig;
    return path;
  }

  // Runs `h2mesh <command> --config <bad config>` to its end; returns the exit code.
  std::optional<int> run_h2mesh(const std::string& command, std::string* err) {
    auto p = Subprocess::spawn({bin_dir() + "/h2mesh", command, "--config", write_bad_config()},
                               dir_, "h2mesh-" + command);
    EXPECT_TRUE(p.ok());
    if (!p.ok()) return std::nullopt;
    auto code = (*p)->wait(20s);
    *err = (*p)->read_all(Subprocess::Stream::Stderr);
    return code;
  }

  // Every mistake is listed as "file:line:column: error: ... (hint: ...)", and nothing else is.
  void expect_every_error_listed(const std::string& err) {
    const std::string path = dir_ + "/bad.yaml";
    for (const ExpectedError& e : kConfigErrors) {
      std::regex re(std::regex_replace(path, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") + ":" +
                    std::to_string(e.line) + R"(:\d+: error: .*)" + e.message + R"(.*\(hint: .*)" +
                    e.hint);
      EXPECT_TRUE(std::regex_search(err, re))
          << "no error for line " << e.line << " (" << e.message << ") in:\n"
          << err;
    }
    const size_t want = std::size(kConfigErrors);
    EXPECT_NE(err.find(std::to_string(want) + " error(s) in " + path), std::string::npos) << err;
  }
};

TEST_F(BadConfigTest, CheckListsEveryErrorWithLineAndHint) {
  std::string err;
  auto code = run_h2mesh("check", &err);
  ASSERT_TRUE(code.has_value()) << "h2mesh check did not finish";
  EXPECT_NE(*code, 0);
  expect_every_error_listed(err);
}

TEST_F(BadConfigTest, RunRefusesToStartAndNeverListens) {
  std::string err;
  auto code = run_h2mesh("run", &err);
  ASSERT_TRUE(code.has_value()) << "h2mesh run kept running with a broken config:\n" << err;
  EXPECT_NE(*code, 0);
  expect_every_error_listed(err);
  EXPECT_EQ(err.find("listening"), std::string::npos) << err;
}

// ---- Clients that misbehave ---------------------------------------------------------------

TEST_F(BadInputTest, Http1ClientGets505ExplainingHttp2AndOthersKeepBeingServed) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));
  const uint64_t errors_before = protocol_errors();

  Socket s = connect_to(proxy_.port);
  ASSERT_TRUE(s.valid());
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send_all(s, request), request.size());
  ReadResult r = read_until_closed(s);
  EXPECT_TRUE(r.closed) << "connection not closed within " << kCloseWithin.count()
                        << " s: " << r.how;
  EXPECT_TRUE(r.bytes.starts_with("HTTP/1.1 505 ")) << r.bytes;
  const size_t body_at = r.bytes.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos) << r.bytes;
  const std::string body = r.bytes.substr(body_at + 4);
  EXPECT_NE(body.find("HTTP/2"), std::string::npos) << "the body should say what this port speaks";
  std::smatch m;
  const std::string head = r.bytes.substr(0, body_at);
  ASSERT_TRUE(std::regex_search(head, m, std::regex(R"(Content-Length: (\d+))"))) << head;
  EXPECT_EQ(std::stoul(m[1]), body.size()) << "Content-Length does not match the body";

  expect_bystander_unharmed(bystander);
  expect_still_serving(bystander);
  expect_protocol_errors_at_least(errors_before + 1);
}

struct GarbageCase {
  const char* name;
  std::string bytes;    // sent after the preface and an empty SETTINGS frame
  uint32_t error_code;  // the GOAWAY's, as RFC 9113 requires
};

std::vector<GarbageCase> garbage_cases() {
  return {
      // RFC 9113 6.5: a SETTINGS length that is not a multiple of 6.
      {"settings_length_5", frame(kSettings, 0, 0, std::string(5, '\0')), kFrameSizeError},
      // 6.1: DATA must be on a stream.
      {"data_on_stream_0", frame(kData, 0, 0, "hello"), kProtocolError},
      // 6.7: PING is exactly 8 bytes.
      {"ping_length_3", frame(kPing, 0, 0, "abc"), kFrameSizeError},
      // 6.9: a zero increment on the connection.
      {"window_update_zero", frame(kWindowUpdate, 0, 0, std::string(4, '\0')), kProtocolError},
      // 4.2: longer than the default SETTINGS_MAX_FRAME_SIZE (16384).
      {"data_too_large", frame(kData, 0, 1, "", 1 << 20), kFrameSizeError},
      // 5.1.1: a client stream id must be odd.
      {"headers_on_even_stream", frame(kHeaders, 0x5, 2, std::string("\x82\x86\x84", 3)),
       kProtocolError},
  };
}

TEST_F(BadInputTest, GarbageFramesGetGoawayWithErrorCodeAndOthersKeepBeingServed) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));
  const uint64_t errors_before = protocol_errors();

  const auto cases = garbage_cases();
  for (const GarbageCase& c : cases) {
    SCOPED_TRACE(c.name);
    Socket s = connect_to(proxy_.port);
    ASSERT_TRUE(s.valid());
    send_all(s, preface_and_settings() + c.bytes);
    ReadResult r = read_until_closed(s);
    EXPECT_TRUE(r.closed) << "connection not closed: " << r.how;
    size_t rest = 0;
    std::vector<Frame> frames = parse_frames(r.bytes, &rest);
    EXPECT_EQ(rest, 0u) << "a truncated frame before the close";
    ASSERT_FALSE(frames.empty()) << "nothing received (" << r.how << ")";
    EXPECT_EQ(frames.front().type, kSettings) << "the server's preface is a SETTINGS frame";
    const Frame& last = frames.back();
    ASSERT_EQ(last.type, kGoaway) << "the last frame before the close is not a GOAWAY";
    ASSERT_GE(last.payload.size(), 8u);
    EXPECT_EQ(last.stream, 0u);
    EXPECT_EQ(be32(last.payload, 4), c.error_code) << "GOAWAY error code";
  }

  expect_bystander_unharmed(bystander);
  expect_still_serving(bystander);
  // Every one of those connections was closed for a protocol error.
  expect_protocol_errors_at_least(errors_before + cases.size());
}

// Deterministic junk: the same bytes on every run.
std::string random_bytes(uint32_t seed, size_t n) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(gen() & 0xff);
  return out;
}

TEST_F(BadInputTest, RandomBytesInsteadOfPrefaceAreCutOffAndOthersKeepBeingServed) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));
  const uint64_t errors_before = protocol_errors();

  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Socket s = connect_to(proxy_.port);
    ASSERT_TRUE(s.valid());
    send_all(s, random_bytes(seed, 64 * 1024));
    ReadResult r = read_until_closed(s);
    EXPECT_TRUE(r.closed) << "connection not closed within " << kCloseWithin.count()
                          << " s: " << r.how;
  }

  expect_bystander_unharmed(bystander);
  expect_still_serving(bystander);
  expect_protocol_errors_at_least(errors_before + 1);
}

TEST_F(BadInputTest, RandomFramesAfterValidPrefaceAreCutOffAndOthersKeepBeingServed) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));

  for (uint32_t seed : {11u, 12u, 13u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Socket s = connect_to(proxy_.port);
    ASSERT_TRUE(s.valid());
    send_all(s, preface_and_settings() + random_bytes(seed, 64 * 1024));
    ReadResult r = read_until_closed(s);
    EXPECT_TRUE(r.closed) << "connection not closed within " << kCloseWithin.count()
                          << " s: " << r.how;
    size_t rest = 0;
    std::vector<Frame> frames = parse_frames(r.bytes, &rest);
    bool goaway = false;
    for (const Frame& f : frames) {
      if (f.type == kGoaway && f.payload.size() >= 8) {
        goaway = true;
        EXPECT_NE(be32(f.payload, 4), 0u) << "GOAWAY without an error code";
      }
    }
    // The reset may overtake the GOAWAY when the proxy closes with our junk still unread;
    // when the bytes did arrive, they must include a GOAWAY.
    if (!r.bytes.empty() && r.how == "EOF") {
      EXPECT_TRUE(goaway) << "closed without a GOAWAY";
    }
  }

  expect_bystander_unharmed(bystander);
  expect_still_serving(bystander);
}

TEST_F(BadInputTest, ManyIdleConnectionsDoNotStopOtherClients) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));

  // Half say nothing at all; half stop in the middle of the preface.
  constexpr int kIdle = 200;
  std::vector<Socket> idle;
  for (int i = 0; i < kIdle; ++i) {
    Socket s = connect_to(proxy_.port);
    ASSERT_TRUE(s.valid()) << "connection " << i << ": " << strerror(errno);
    if (i % 2 == 1) send_all(s, std::string(kPreface, 10));
    idle.push_back(std::move(s));
  }
  // The proxy accepted them all (plus the bystander's) and still answers everyone.
  EXPECT_TRUE(eventually(
      [&] {
        return metric(proxy_.admin_port, "h2mesh_downstream_connections_active").value_or(0) >=
               kIdle + 1;
      },
      5000ms))
      << "active connections: "
      << metric(proxy_.admin_port, "h2mesh_downstream_connections_active").value_or(0);
  expect_still_serving(bystander);
  expect_bystander_unharmed(bystander);

  idle.clear();
  EXPECT_TRUE(eventually(
      [&] {
        return metric(proxy_.admin_port, "h2mesh_downstream_connections_active").value_or(0) <= 2;
      },
      5000ms))
      << "the proxy did not notice the idle clients leave";
}

// A client that opens a connection and says nothing, or starts a request header block and never
// ends it, holds a slot of the proxy: both are cut after the listener's header_timeout.
TEST_F(BadInputTest, SilentOrUnfinishedHeadersAreCutAfterHeaderTimeout) {
  start_backends(2);
  std::string config = simple_config(endpoints(), "round_robin");
  const std::string listener = "    address: \"127.0.0.1:0\"\n    routes:";
  ASSERT_NE(config.find(listener), std::string::npos);
  config.replace(config.find(listener), listener.size(),
                 "    address: \"127.0.0.1:0\"\n    header_timeout: 300ms\n    routes:");
  start(config);
  ASSERT_NE(proxy_.port, 0) << "the proxy did not start";
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));
  constexpr char kTimeouts[] = "h2mesh_downstream_header_timeouts_total";
  const uint64_t timeouts_before = metric(proxy_.admin_port, kTimeouts).value_or(0);

  const auto opened = std::chrono::steady_clock::now();
  Socket silent = connect_to(proxy_.port);
  ASSERT_TRUE(silent.valid());
  Socket unfinished = connect_to(proxy_.port);
  ASSERT_TRUE(unfinished.valid());
  // HEADERS without END_HEADERS (:method POST, :scheme http), and no CONTINUATION ever.
  const std::string partial = frame(kHeaders, /*flags=*/0, 1, "\x83\x86");
  ASSERT_EQ(send_all(unfinished, preface_and_settings() + partial),
            preface_and_settings().size() + partial.size());

  ReadResult r1 = read_until_closed(silent);
  EXPECT_TRUE(r1.closed) << "silent connection: " << r1.how;
  EXPECT_GE(std::chrono::steady_clock::now() - opened, 300ms) << "closed before header_timeout";
  ReadResult r2 = read_until_closed(unfinished);
  EXPECT_TRUE(r2.closed) << "unfinished headers: " << r2.how;
  size_t rest = 0;
  bool calm = false;
  for (const Frame& f : parse_frames(r2.bytes, &rest)) {
    if (f.type == kGoaway && f.payload.size() >= 8) calm = be32(f.payload, 4) == 0xb;
  }
  EXPECT_TRUE(calm) << "expected a GOAWAY with ENHANCE_YOUR_CALM before the close";

  EXPECT_TRUE(eventually(
      [&] { return metric(proxy_.admin_port, kTimeouts).value_or(0) >= timeouts_before + 2; },
      5000ms))
      << kTimeouts << " is " << metric(proxy_.admin_port, kTimeouts).value_or(0);
  EXPECT_EQ(protocol_errors(), 0u) << "a timeout is not a protocol error";
  expect_bystander_unharmed(bystander);
  expect_still_serving(bystander);
}

// All of the above on one proxy: each kind of rejected connection is counted.
TEST_F(BadInputTest, MetricsCountProtocolErrors) {
  ASSERT_NO_FATAL_FAILURE(serve());
  ASSERT_EQ(metric(proxy_.admin_port, kProtocolErrors), std::optional<uint64_t>(0));
  uint64_t want = 0;
  auto send_and_wait_close = [&](const std::string& bytes) {
    Socket s = connect_to(proxy_.port);
    ASSERT_TRUE(s.valid());
    send_all(s, bytes);
    EXPECT_TRUE(read_until_closed(s).closed);
    ++want;
  };
  send_and_wait_close("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  expect_protocol_errors_at_least(want);
  send_and_wait_close(random_bytes(7, 4096));
  expect_protocol_errors_at_least(want);
  for (const GarbageCase& c : garbage_cases()) {
    SCOPED_TRACE(c.name);
    send_and_wait_close(preface_and_settings() + c.bytes);
    expect_protocol_errors_at_least(want);
  }
  EXPECT_EQ(call_error(*stub()), "");
  EXPECT_TRUE(proxy_.process->running());
}

}  // namespace
}  // namespace h2mesh_test
