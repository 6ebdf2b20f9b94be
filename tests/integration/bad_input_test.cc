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

namespace h2mesh_test {
namespace {

using namespace std::chrono_literals;

// Bounds every blocking socket call, so a proxy that stops answering fails the test instead of
// hanging it.
constexpr timeval kSocketTimeout{5, 0};
// How long a rejected connection may take to be closed by the proxy.
constexpr auto kCloseWithin = 5s;
constexpr size_t kMaxReply = 1 << 20;

// ---- Raw sockets --------------------------------------------------------------------------

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A blocking loopback connection with send and receive timeouts.
Socket connect_to(uint16_t port) {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return s;
  ::setsockopt(s.fd(), SOL_SOCKET, SO_RCVTIMEO, &kSocketTimeout, sizeof(kSocketTimeout));
  ::setsockopt(s.fd(), SOL_SOCKET, SO_SNDTIMEO, &kSocketTimeout, sizeof(kSocketTimeout));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return Socket();
  return s;
}

// Sends all of `data` unless the peer closes first (which is allowed: the proxy may hang up
// on garbage before reading all of it). Returns the bytes sent.
size_t send_all(const Socket& s, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(s.fd(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed, reset or the send timeout
    sent += static_cast<size_t>(n);
  }
  return sent;
}

struct ReadResult {
  std::string bytes;
  bool closed = false;  // EOF or reset: the proxy closed the connection
  std::string how;      // "EOF", "reset", "timeout", ...
};

// Reads until the peer closes, `within` passes or kMaxReply bytes arrived.
ReadResult read_until_closed(const Socket& s, std::chrono::milliseconds within = kCloseWithin) {
  ReadResult r;
  const auto deadline = std::chrono::steady_clock::now() + within;
  char buf[16384];
  while (std::chrono::steady_clock::now() < deadline && r.bytes.size() < kMaxReply) {
    ssize_t n = ::recv(s.fd(), buf, sizeof(buf), 0);
    if (n > 0) {
      r.bytes.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      r.closed = true;
      r.how = "EOF";
      return r;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.how = "timeout";
      continue;  // SO_RCVTIMEO expired; the deadline decides
    }
    r.closed = errno == ECONNRESET || errno == EPIPE;
    r.how = std::string("error: ") + strerror(errno);
    return r;
  }
  if (r.how.empty()) r.how = "still open";
  return r;
}

// ---- HTTP/2 frames --------------------------------------------------------------------------

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr uint8_t kData = 0x0, kHeaders = 0x1, kSettings = 0x4, kPing = 0x6, kGoaway = 0x7,
                  kWindowUpdate = 0x8;
constexpr uint32_t kProtocolError = 0x1, kFrameSizeError = 0x6;

// One frame; `length` is the header's length field, which garbage may set to a lie.
std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload,
                  std::optional<uint32_t> length = std::nullopt) {
  const uint32_t len = length.value_or(static_cast<uint32_t>(payload.size()));
  std::string f;
  f += static_cast<char>((len >> 16) & 0xff);
  f += static_cast<char>((len >> 8) & 0xff);
  f += static_cast<char>(len & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  for (int shift = 24; shift >= 0; shift -= 8) f += static_cast<char>((stream >> shift) & 0xff);
  return f + payload;
}

std::string preface_and_settings() { return std::string(kPreface) + frame(kSettings, 0, 0, ""); }

uint32_t be32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

struct Frame {
  uint8_t type;
  uint32_t stream;
  std::string payload;
};

// Splits what the proxy sent into frames; a truncated tail is reported through *rest.
std::vector<Frame> parse_frames(const std::string& bytes, size_t* rest) {
  std::vector<Frame> frames;
  size_t at = 0;
  while (bytes.size() - at >= 9) {
    const uint32_t len = be32(bytes, at) >> 8;
    if (bytes.size() - at - 9 < len) break;
    frames.push_back(Frame{static_cast<uint8_t>(bytes[at + 3]), be32(bytes, at + 5) & 0x7fffffff,
                           bytes.substr(at + 9, len)});
    at += 9 + len;
  }
  *rest = bytes.size() - at;
  return frames;
}

// ---- gRPC clients and metrics --------------------------------------------------------------

// One unary call with a 5 s deadline; the error text, or empty on success.
std::string call_error(helloworld::Greeter::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  helloworld::HelloRequest req;
  req.set_name("bystander");
  helloworld::HelloReply reply;
  grpc::Status st = stub.SayHello(&ctx, req, &reply);
  if (!st.ok()) return std::to_string(st.error_code()) + " " + st.error_message();
  if (backend_of(reply.message()).empty()) return "unexpected reply '" + reply.message() + "'";
  return "";
}

// Makes unary calls on its own connection from a thread, for as long as the bad input lasts.
class Bystander {
 public:
  static constexpr int kMinCalls = 5;

  explicit Bystander(const std::string& target)
      : stub_(helloworld::Greeter::NewStub(make_channel(target))) {}
  ~Bystander() { stop(); }

  helloworld::Greeter::Stub& stub() { return *stub_; }
  void start() {
    thread_ = std::thread([this] {
      for (int i = 0; i < 100000 && !stop_; ++i) {  // bounded; stop() ends it much earlier
        std::string error = call_error(*stub_);
        if (error.empty()) {
          ok_++;
        } else {
          failed_++;
          std::lock_guard lock(mu_);
          if (first_error_.empty()) first_error_ = error;
        }
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  // Lets it make a few calls first, so that "unharmed" means something even when the bad
  // input was over in a millisecond.
  void stop() {
    if (thread_.joinable()) {
      eventually([this] { return ok_ + failed_ >= kMinCalls; }, kMinCalls * 6000ms);
    }
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int ok() const { return ok_; }
  int failed() const { return failed_; }
  std::string first_error() {
    std::lock_guard lock(mu_);
    return first_error_;
  }

 private:
  std::unique_ptr<helloworld::Greeter::Stub> stub_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::mutex mu_;
  std::string first_error_;
};

// A counter or gauge without labels from /metrics; nullopt if absent.
std::optional<uint64_t> metric(uint16_t admin_port, const std::string& name) {
  auto [code, body] = http_get(admin_port, "/metrics");
  if (code != 200) return std::nullopt;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(name + " ")) return std::stoull(line.substr(name.size() + 1));
  }
  return std::nullopt;
}

constexpr char kProtocolErrors[] = "h2mesh_downstream_protocol_errors_total";

class BadInputTest : public ProxyTest {
 protected:
  // Two backends and a one-worker proxy: the bad connections and the good client share one
  // event loop, the hardest case for "others keep being served".
  void serve() {
    start_backends(2);
    start(simple_config(endpoints(), "round_robin"));
    ASSERT_NE(proxy_.port, 0) << "the proxy did not start";
    ASSERT_NE(proxy_.admin_port, 0);
  }

  uint64_t protocol_errors() { return metric(proxy_.admin_port, kProtocolErrors).value_or(0); }

  // The proxy counted at least `want` protocol errors (the admin server gathers the workers'
  // counters asynchronously, so poll).
  void expect_protocol_errors_at_least(uint64_t want) {
    EXPECT_TRUE(eventually([&] { return protocol_errors() >= want; }, 5000ms))
        << kProtocolErrors << " is " << protocol_errors() << ", wanted >= " << want;
  }

  // The proxy is alive and `b` (connected since before the bad input) and a brand-new client
  // both get answers.
  void expect_still_serving(Bystander& b) {
    ASSERT_TRUE(proxy_.process->running())
        << "h2mesh exited: " << proxy_.process->read_all(Subprocess::Stream::Stderr);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(call_error(b.stub()), "") << "old client, call " << i;
    auto fresh = stub();
    for (int i = 0; i < 5; ++i) EXPECT_EQ(call_error(*fresh), "") << "new client, call " << i;
  }

  // Starts `b`'s background calls after a first call proved its connection works.
  void start_bystander(Bystander& b) {
    ASSERT_EQ(call_error(b.stub()), "") << "the proxy does not serve a plain client";
    b.start();
  }

  void expect_bystander_unharmed(Bystander& b) {
    b.stop();
    EXPECT_GT(b.ok(), 0);
    EXPECT_EQ(b.failed(), 0) << "first failure: " << b.first_error();
  }
};

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
