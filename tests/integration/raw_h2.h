#pragma once

// Raw HTTP/2 for tests that misbehave on purpose (bad input, attacks): blocking loopback
// sockets with timeouts, hand-built frames, HPACK blocks written by hand and decoded with the
// proxy's own decoder, a bystander client that must stay unharmed, and /metrics lookups.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.h"
#include "http2/hpack.h"

namespace h2mesh_test {

using namespace std::chrono_literals;

// Bounds every blocking socket call, so a proxy that stops answering fails the test instead of
// hanging it.
inline constexpr timeval kSocketTimeout{5, 0};
// How long a rejected connection may take to be closed by the proxy.
inline constexpr auto kCloseWithin = 5s;
inline constexpr size_t kMaxReply = 1 << 20;

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
inline Socket connect_to(uint16_t port) {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return s;
  ::setsockopt(s.fd(), SOL_SOCKET, SO_RCVTIMEO, &kSocketTimeout, sizeof(kSocketTimeout));
  ::setsockopt(s.fd(), SOL_SOCKET, SO_SNDTIMEO, &kSocketTimeout, sizeof(kSocketTimeout));
  const int one = 1;  // frames go out as written: no Nagle delay between a test's writes
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return Socket();
  return s;
}

// Sends all of `data` unless the peer closes first (which is allowed: the proxy may hang up
// on garbage before reading all of it). Returns the bytes sent.
inline size_t send_all(const Socket& s, const std::string& data) {
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
inline ReadResult read_until_closed(const Socket& s, std::chrono::milliseconds within = kCloseWithin) {
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

inline constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr uint8_t kData = 0x0, kHeaders = 0x1, kSettings = 0x4, kPing = 0x6, kGoaway = 0x7,
                  kWindowUpdate = 0x8;
inline constexpr uint32_t kProtocolError = 0x1, kFrameSizeError = 0x6;

// One frame; `length` is the header's length field, which garbage may set to a lie.
inline std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload,
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

inline std::string preface_and_settings() { return std::string(kPreface) + frame(kSettings, 0, 0, ""); }

inline uint32_t be32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

struct Frame {
  uint8_t type;
  uint32_t stream;
  std::string payload;
  uint8_t flags = 0;
};

// Splits what the proxy sent into frames; a truncated tail is reported through *rest.
inline std::vector<Frame> parse_frames(const std::string& bytes, size_t* rest) {
  std::vector<Frame> frames;
  size_t at = 0;
  while (bytes.size() - at >= 9) {
    const uint32_t len = be32(bytes, at) >> 8;
    if (bytes.size() - at - 9 < len) break;
    frames.push_back(Frame{static_cast<uint8_t>(bytes[at + 3]), be32(bytes, at + 5) & 0x7fffffff,
                           bytes.substr(at + 9, len), static_cast<uint8_t>(bytes[at + 4])});
    at += 9 + len;
  }
  *rest = bytes.size() - at;
  return frames;
}

// ---- gRPC clients and metrics --------------------------------------------------------------

// One unary call with a 5 s deadline; the error text, or empty on success.
inline std::string call_error(helloworld::Greeter::Stub& stub) {
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
  static inline constexpr int kMinCalls = 5;

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
inline std::optional<uint64_t> metric(uint16_t admin_port, const std::string& name) {
  auto [code, body] = http_get(admin_port, "/metrics");
  if (code != 200) return std::nullopt;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(name + " ")) return std::stoull(line.substr(name.size() + 1));
  }
  return std::nullopt;
}

inline constexpr char kProtocolErrors[] = "h2mesh_downstream_protocol_errors_total";

class MisbehavingClientTest : public ProxyTest {
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

// ---- HPACK by hand ----------------------------------------------------------------------------

// An HPACK integer (RFC 7541 5.1) with a `prefix_bits` prefix; `pattern` holds the bits above it.
inline std::string hpack_int(uint8_t pattern, int prefix_bits, uint64_t value) {
  const uint64_t max = (uint64_t{1} << prefix_bits) - 1;
  std::string out;
  if (value < max) return std::string(1, static_cast<char>(pattern | value));
  out += static_cast<char>(pattern | max);
  value -= max;
  while (value >= 128) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  return out + static_cast<char>(value);
}
// A string literal, not Huffman-coded.
inline std::string hpack_string(const std::string& s) { return hpack_int(0, 7, s.size()) + s; }
// A field with a literal name that does not enter the dynamic table.
inline std::string hpack_literal(const std::string& name, const std::string& value) {
  return std::string(1, '\0') + hpack_string(name) + hpack_string(value);
}
// A field with a literal name that enters the dynamic table (as index 62 when it is the newest).
inline std::string hpack_indexed_literal(const std::string& name, const std::string& value) {
  return std::string(1, '\x40') + hpack_string(name) + hpack_string(value);
}
// A reference to a table entry: static 1..61, dynamic from 62.
inline std::string hpack_indexed(uint32_t index) { return hpack_int(0x80, 7, index); }

// The request headers of a greeter call: POST, http, the path, content-type, te.
inline std::string grpc_request_block(const std::string& path = "/helloworld.Greeter/SayHello") {
  return hpack_indexed(3) + hpack_indexed(6) + hpack_literal(":path", path) +
         hpack_literal(":authority", "attack.test") +
         hpack_literal("content-type", "application/grpc") + hpack_literal("te", "trailers");
}

// HelloRequest{name} as one length-prefixed gRPC message.
inline std::string hello_message(const std::string& name) {
  std::string pb = std::string(1, '\x0a') + static_cast<char>(name.size()) + name;
  std::string out(5, '\0');
  out[4] = static_cast<char>(pb.size());
  return out + pb;
}

inline constexpr uint8_t kRstStream = 0x3, kPriority = 0x2, kContinuation = 0x9;
inline constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4, kAck = 0x1;
inline constexpr uint32_t kFlowControlError = 0x3, kStreamClosed = 0x5, kEnhanceYourCalm = 0xb;

inline std::string u32(uint32_t v) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
  return out;
}
inline std::string settings_entry(uint16_t id, uint32_t value) {
  return std::string(1, static_cast<char>(id >> 8)) + static_cast<char>(id & 0xff) + u32(value);
}

// One decoded header block the proxy sent.
struct HeaderBlockSeen {
  uint32_t stream = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  bool end_stream = false;
  std::optional<std::string> find(const std::string& name) const {
    for (const auto& [n, v] : fields)
      if (n == name) return v;
    return std::nullopt;
  }
};

// Reads what the proxy sends on a raw connection: frames, header blocks (decoded in order), and
// whether it closed. Every wait is bounded.
class FrameReader {
 public:
  explicit FrameReader(const Socket& s) : s_(s) {}

  // Reads until `pred` holds for a frame received (this call or before), the peer closes, or
  // `within` passes. Returns the first matching frame.
  std::optional<Frame> wait_for(const std::function<bool(const Frame&)>& pred,
                                std::chrono::milliseconds within = kCloseWithin) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    size_t checked = 0;
    for (;;) {
      for (; checked < frames.size(); ++checked)
        if (pred(frames[checked])) return frames[checked];
      if (closed || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      read_some();
    }
  }
  std::optional<Frame> wait_for_type(uint8_t type, std::chrono::milliseconds within = kCloseWithin) {
    return wait_for([type](const Frame& f) { return f.type == type; }, within);
  }
  // The first complete header block on `stream` (from this call or before).
  std::optional<HeaderBlockSeen> wait_for_headers(uint32_t stream,
                                                  std::chrono::milliseconds within = kCloseWithin) {
    auto match = [&]() -> const HeaderBlockSeen* {
      for (const auto& b : blocks)
        if (b.stream == stream) return &b;
      return nullptr;
    };
    wait_for([&](const Frame&) { return match() != nullptr; }, within);
    if (const HeaderBlockSeen* b = match()) return *b;
    return std::nullopt;
  }
  // Reads until the peer closes or `within` passes; true if it closed.
  bool wait_closed(std::chrono::milliseconds within = kCloseWithin) {
    wait_for([](const Frame&) { return false; }, within);
    return closed;
  }
  // The error code of the GOAWAY the proxy sent, if any (waits for one).
  std::optional<uint32_t> goaway_code(std::chrono::milliseconds within = kCloseWithin) {
    auto f = wait_for_type(kGoaway, within);
    if (!f || f->payload.size() < 8) return std::nullopt;
    return be32(f->payload, 4);
  }

  std::vector<Frame> frames;
  std::vector<HeaderBlockSeen> blocks;
  bool closed = false;
  bool hpack_error = false;

 private:
  void read_some() {
    char buf[16384];
    ssize_t n = ::recv(s_.fd(), buf, sizeof(buf), 0);
    if (n > 0) {
      bytes_.append(buf, static_cast<size_t>(n));
      size_t rest = 0;
      std::vector<Frame> got = parse_frames(bytes_.substr(skip_), &rest);
      skip_ = bytes_.size() - rest;
      for (Frame& f : got) take(std::move(f));
      return;
    }
    if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) closed = true;
  }
  void take(Frame f) {
    if (f.type == kHeaders || f.type == kContinuation) {
      std::string fragment = f.payload;
      if (f.type == kHeaders) {
        size_t pad = 0;
        if (f.flags & 0x8) {  // PADDED
          pad = static_cast<uint8_t>(fragment[0]);
          fragment = fragment.substr(1);
        }
        if (f.flags & 0x20) fragment = fragment.substr(5);  // PRIORITY
        fragment.resize(fragment.size() - std::min(pad, fragment.size()));
        pending_ = HeaderBlockSeen{f.stream, {}, (f.flags & kEndStream) != 0};
        block_.clear();
      }
      block_ += fragment;
      if (f.flags & kEndHeaders) {
        if (auto fields = decoder_.decode(block_)) {
          pending_.fields = std::move(*fields);
          blocks.push_back(std::move(pending_));
        } else {
          hpack_error = true;
        }
      }
    }
    frames.push_back(std::move(f));
  }

  const Socket& s_;
  std::string bytes_;
  size_t skip_ = 0;
  h2mesh::http2::HpackDecoder decoder_;
  HeaderBlockSeen pending_;
  std::string block_;
};

// VmHWM (peak resident set) and VmRSS of a process, in KiB.
inline uint64_t proc_status_kib(int pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(key + ":")) return std::stoull(line.substr(key.size() + 1));
  }
  return 0;
}

}  // namespace h2mesh_test
