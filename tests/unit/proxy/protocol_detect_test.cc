// ProtocolDetector on real loopback connections, driven by an event loop in the test thread:
// what a client sends first decides, the bytes stay in the socket for whoever reads next, and
// the detector can be destroyed from its own callback.

#include "proxy/protocol_detect.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "fakes/loop_script.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "proxy/mesh_table.h"

namespace h2mesh::proxy {
namespace {

using namespace std::chrono_literals;
using Script = h2mesh_test_fakes::LoopScript;

const std::string kPreface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
// An empty SETTINGS frame: what follows the preface.
const std::string kSettings("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
// The start of a TLS 1.2/1.3 ClientHello record: handshake (22), version 3.1, length, type 1.
const std::string kClientHello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);

std::optional<Protocol> classify(const std::string& bytes) {
  return classify_first_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

TEST(ClassifyFirstBytes, DecidesAtTheFirstDifferentByteOrTheLastPrefaceByte) {
  EXPECT_EQ(classify(""), std::nullopt);
  EXPECT_EQ(classify("P"), std::nullopt);
  EXPECT_EQ(classify(kPreface.substr(0, 23)), std::nullopt);
  EXPECT_EQ(classify(kPreface), Protocol::Http2);
  EXPECT_EQ(classify(kPreface + kSettings), Protocol::Http2);
  EXPECT_EQ(classify("PRI * HTTP/1.1"), Protocol::Other);
  EXPECT_EQ(classify("G"), Protocol::Other);
  EXPECT_EQ(classify(std::string(1, '\0')), Protocol::Other);
}

TEST(ClassifyFirstBytes, TlsClientHelloIsToldApartFromOtherBinary) {
  EXPECT_EQ(classify(kClientHello), Protocol::Tls);
  EXPECT_EQ(classify(kClientHello.substr(0, 2)), Protocol::Tls);
  EXPECT_EQ(classify("\x16"), std::nullopt) << "one byte is not enough to tell";
  EXPECT_EQ(classify(std::string("\x16\x02", 2)), Protocol::Other);
  EXPECT_EQ(classify(std::string("\x17\x03\x03", 3)), Protocol::Other) << "application data";
}

// A loopback connection: `client` (blocking) and the accepted `server` end (non-blocking), the
// one a detector watches.
class Connection {
 public:
  Connection() {
    int listener = *net::listen_tcp({"127.0.0.1", 0}, false);
    const uint16_t port = net::local_port(listener);
    client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto sa = net::to_sockaddr({"127.0.0.1", port});
    EXPECT_EQ(connect(client, sa->get(), sa->len), 0);
    // The listener is non-blocking, and the handshake completed inside connect() on loopback.
    server = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    EXPECT_GE(server, 0) << strerror(errno);
    close(listener);
  }
  ~Connection() {
    close(client);
    close(server);
  }
  void send(const std::string& bytes) const {
    EXPECT_EQ(::send(client, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // Everything queued on the server end now (it is non-blocking).
  std::string read_queued() const {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(server, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

  int client = -1;
  int server = -1;
};

// Waits (bounded, 1 ms naps) until `n` bytes are queued on `fd`: loopback delivers within the
// send() almost always, but the kernel may leave it to ksoftirqd on a busy machine.
bool wait_for_queued(int fd, int n) {
  for (int i = 0; i < 5000; ++i) {
    int queued = 0;
    if (ioctl(fd, FIONREAD, &queued) == 0 && queued >= n) return true;
    poll(nullptr, 0, 1);
  }
  return false;
}

struct Decision {
  std::optional<Protocol> protocol;
  Duration elapsed{};
  int calls = 0;
};

// Watches `conn` with a detector, runs the script's steps (the client's sends), and waits for the
// decision. The callback destroys the detector itself, as the outbound listener will.
Decision detect(Connection& conn, Duration timeout, const std::vector<std::string>& sends) {
  net::EventLoop loop;
  Script script(loop);
  Decision d;
  std::unique_ptr<ProtocolDetector> detector;
  for (size_t i = 0; i < sends.size(); ++i) {
    script.step(
        "send " + std::to_string(i),
        [&, i] {
          if (i > 0) {
            EXPECT_FALSE(d.protocol) << "decided before send " << i;
          }
          conn.send(sends[i]);
        },
        [] { return true; });
  }
  script.wait("decided", [&] { return d.calls > 0; });
  script.step("no second report", nullptr, [] { return true; });
  detector = std::make_unique<ProtocolDetector>(loop, conn.server, timeout,
                                                [&](Protocol p, Duration elapsed) {
                                                  ++d.calls;
                                                  d.protocol = p;
                                                  d.elapsed = elapsed;
                                                  detector.reset();
                                                });
  EXPECT_EQ(script.run(), "");
  EXPECT_EQ(d.calls, 1);
  EXPECT_EQ(detector, nullptr);
  return d;
}

TEST(ProtocolDetector, PrefaceIsHttp2AndStaysInTheSocket) {
  Connection conn;
  Decision d = detect(conn, 10s, {kPreface + kSettings});
  EXPECT_EQ(d.protocol, Protocol::Http2);
  EXPECT_LT(d.elapsed, 10s) << "decided by the bytes, not by the timeout";
  EXPECT_EQ(conn.read_queued(), kPreface + kSettings) << "peeked, not consumed";
}

TEST(ProtocolDetector, PrefaceSplitInThreeWritesIsHttp2) {
  Connection conn;
  Decision d = detect(conn, 10s, {kPreface.substr(0, 5), kPreface.substr(5, 12),
                                  kPreface.substr(17) + kSettings});
  EXPECT_EQ(d.protocol, Protocol::Http2);
  EXPECT_EQ(conn.read_queued(), kPreface + kSettings);
}

TEST(ProtocolDetector, Http1RequestIsOther) {
  Connection conn;
  const std::string request = "GET / HTTP/1.1\r\nHost: greeter\r\n\r\n";
  Decision d = detect(conn, 10s, {request});
  EXPECT_EQ(d.protocol, Protocol::Other);
  EXPECT_LT(d.elapsed, 10s);
  EXPECT_EQ(conn.read_queued(), request);
}

TEST(ProtocolDetector, TlsClientHelloIsTlsAndStaysQueued) {
  // The outbound side relays it like any other non-HTTP/2; the inbound side terminates mesh mTLS.
  Connection conn;
  Decision d = detect(conn, 10s, {kClientHello});
  EXPECT_EQ(d.protocol, Protocol::Tls);
  EXPECT_LT(d.elapsed, 10s);
  EXPECT_EQ(conn.read_queued(), kClientHello);
}

TEST(ProtocolDetector, ShortNonHttp2MessageIsOtherWithoutWaitingForMore) {
  Connection conn;
  Decision d = detect(conn, 10s, {"PING\r\n"});  // Redis, shorter than the preface
  EXPECT_EQ(d.protocol, Protocol::Other);
  EXPECT_LT(d.elapsed, 10s);
}

TEST(ProtocolDetector, SilentClientIsOtherAfterTheTimeout) {
  Connection conn;  // a client waiting for the server to speak first (SMTP, MySQL)
  Decision d = detect(conn, 50ms, {});
  EXPECT_EQ(d.protocol, Protocol::Other);
  EXPECT_GE(d.elapsed, 50ms) << "not before the timeout";
  conn.send("late");
  EXPECT_EQ(conn.read_queued(), "late") << "the socket is left as it was";
}

TEST(ProtocolDetector, PartialPrefaceThenSilenceIsOtherAfterTheTimeout) {
  Connection conn;
  Decision d = detect(conn, 50ms, {kPreface.substr(0, 16)});
  EXPECT_EQ(d.protocol, Protocol::Other);
  EXPECT_GE(d.elapsed, 50ms);
  EXPECT_EQ(conn.read_queued(), kPreface.substr(0, 16));
}

TEST(ProtocolDetector, EndOfStreamIsOther) {
  Connection conn;
  shutdown(conn.client, SHUT_WR);
  Decision d = detect(conn, 10s, {});
  EXPECT_EQ(d.protocol, Protocol::Other);
  EXPECT_LT(d.elapsed, 10s);
}

TEST(ProtocolDetector, PartialPrefaceThenEndOfStreamIsOther) {
  Connection conn;
  conn.send(kPreface.substr(0, 10));
  shutdown(conn.client, SHUT_WR);
  Decision d = detect(conn, 10s, {});
  EXPECT_EQ(d.protocol, Protocol::Other) << "the rest can never come";
  EXPECT_LT(d.elapsed, 10s);
  EXPECT_EQ(conn.read_queued(), kPreface.substr(0, 10));
}

// Bytes that leave the decision open are not reported again by the loop (edge-triggered): a
// client that sends half a preface and waits costs nothing until more comes or time runs out.
TEST(ProtocolDetector, PartialPrefaceDoesNotKeepTheLoopBusy) {
  Connection conn;
  net::EventLoop loop;
  int calls = 0;
  ProtocolDetector detector(loop, conn.server, 10s, [&](Protocol, Duration) { ++calls; });
  conn.send(kPreface.substr(0, 8));
  ASSERT_TRUE(wait_for_queued(conn.server, 8));
  EXPECT_TRUE(loop.run_ready()) << "the arrival is seen";
  EXPECT_FALSE(loop.run_ready()) << "and not reported again while nothing new comes";
  conn.send(kPreface.substr(8));
  ASSERT_TRUE(wait_for_queued(conn.server, 24));
  loop.run_ready();
  EXPECT_EQ(calls, 1) << "the rest of the preface decides";
}

// After the callback the socket is the next owner's: it can register it on the same loop at
// once and read every byte the client sent.
TEST(ProtocolDetector, NextOwnerReadsEveryByteOnTheSameLoop) {
  Connection conn;
  net::EventLoop loop;
  Script script(loop);
  struct Reader final : net::IoHandler {
    int fd = -1;
    std::string got;
    void on_io(uint32_t) override {
      char buf[256];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    }
  } reader;
  reader.fd = conn.server;
  std::unique_ptr<ProtocolDetector> detector;
  std::optional<Protocol> decided;
  detector = std::make_unique<ProtocolDetector>(
      loop, conn.server, 10s, [&](Protocol p, Duration) {
        decided = p;
        detector.reset();
        loop.add(conn.server, EPOLLIN, &reader);
      });
  script.step("client sends", [&] { conn.send(kPreface + kSettings); },
              [&] { return reader.got.size() == kPreface.size() + kSettings.size(); });
  EXPECT_EQ(script.run(), "");
  EXPECT_EQ(decided, Protocol::Http2);
  EXPECT_EQ(reader.got, kPreface + kSettings);
  loop.remove(conn.server);
}

}  // namespace
}  // namespace h2mesh::proxy

// Which Service ports wait for the preface as long as a client may take (the port declares
// HTTP/2) rather than detect_timeout.
TEST(DeclaresHttp2, AppProtocolDecidesWhenGiven) {
  using h2mesh::proxy::declares_http2;
  EXPECT_TRUE(declares_http2("", "grpc"));
  EXPECT_TRUE(declares_http2("web", "kubernetes.io/h2c"));
  EXPECT_TRUE(declares_http2("", "h2c"));
  EXPECT_TRUE(declares_http2("", "http2"));
  // appProtocol wins over the name.
  EXPECT_FALSE(declares_http2("grpc", "http"));
  EXPECT_FALSE(declares_http2("grpc", "kubernetes.io/ws"));
}

TEST(DeclaresHttp2, PortNamesFollowTheMeshConvention) {
  using h2mesh::proxy::declares_http2;
  for (const char* name : {"grpc", "grpc-web", "grpc-api", "h2c", "h2c-internal", "http2"})
    EXPECT_TRUE(declares_http2(name, "")) << name;
  for (const char* name : {"", "grpcx", "grpc-", "http", "http-2", "tcp", "mysql", "agrpc"})
    EXPECT_FALSE(declares_http2(name, "")) << name;
}
