// TcpRelay between real loopback sockets: the test plays the client and the destination as
// non-blocking peers on the same event loop as the relay, in the test thread.
//
//   client Peer ──TCP──> (accepted) TcpRelay ──TCP──> destination Peer (accepted from a listener)

#include "proxy/tcp_relay.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "net/event_loop.h"
#include "net/socket.h"

namespace h2mesh::proxy {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kMiB = 1024 * 1024;

// Byte `i` of the stream a peer sends: depends on the offset at several scales, so that a lost,
// repeated or reordered chunk shows.
uint8_t pattern_byte(uint64_t i) {
  uint64_t x = (i >> 3) * 0x9E3779B97F4A7C15ull;
  return static_cast<uint8_t>((x >> 56) ^ i);
}

// One end of a connection, played by the test on the relay's loop. It sends what it is given
// (bytes, or a pattern generated as it goes), optionally echoes what it reads, and records what
// it receives: the first MiB as a string, every byte checked against the pattern when asked.
class Peer final : public net::IoHandler {
 public:
  Peer(net::EventLoop& loop, int fd) : loop_(loop), fd_(fd) {
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    loop_.add(fd_, 0, this);
    update();
  }
  ~Peer() override { close_fd(false); }

  void send(const std::string& bytes) {
    out_.append(bytes);
    progress();
  }
  void send_pattern(uint64_t n) {
    pattern_left_ = n;
    progress();
  }
  void shutdown_when_sent() {
    shut_pending_ = true;
    progress();
  }
  // What it reads goes back; its end of stream too, once the bytes before it are sent.
  void echo() {
    echo_ = true;
    progress();
  }
  void check_pattern() { check_ = true; }
  // A reader that stops (a stopped process): its socket's receive buffer fills up.
  void set_reading(bool on) {
    reading_ = on;
    progress();
  }
  // Ends its side now: bytes its socket did not take yet are dropped, not sent.
  void shutdown_now() {
    out_.clear();
    out_off_ = 0;
    pattern_left_ = 0;
    shut_pending_ = true;
    progress();
  }
  // SO_LINGER 0 and close: the other side gets a RST.
  void reset() { close_fd(true); }

  const std::string& received() const { return received_; }
  uint64_t received_bytes() const { return received_bytes_; }
  uint64_t sent_bytes() const { return sent_bytes_; }
  bool pattern_ok() const { return pattern_ok_; }
  bool eof() const { return eof_; }
  int error() const { return error_; }
  bool closed() const { return fd_ < 0; }
  // It has bytes its socket did not take.
  bool blocked() const { return out_off_ < out_.size(); }

  void on_io(uint32_t events) override {
    if (fd_ < 0) return;
    if (events & EPOLLERR) {
      socklen_t len = sizeof error_;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error_, &len);
      close_fd(false);
      return;
    }
    if (reading_ && (events & (EPOLLIN | EPOLLHUP))) read_once();
    progress();
  }

 private:
  static constexpr size_t kEchoLimit = 256 * 1024;  // not read while this much waits to go back

  void read_once() {
    uint8_t buf[64 * 1024];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0) {
      if (errno != EAGAIN) {
        error_ = errno;
        close_fd(false);
      }
      return;
    }
    if (n == 0) {
      eof_ = true;
      if (echo_) shut_pending_ = true;
      return;
    }
    for (ssize_t i = 0; check_ && pattern_ok_ && i < n; ++i)
      if (buf[i] != pattern_byte(received_bytes_ + static_cast<uint64_t>(i))) pattern_ok_ = false;
    if (received_bytes_ < kMiB) received_.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    received_bytes_ += static_cast<uint64_t>(n);
    if (echo_) out_.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  }

  void progress() {
    flush();
    update();
  }

  void flush() {
    while (fd_ >= 0) {
      if (out_off_ == out_.size() && pattern_left_ > 0) {
        out_.clear();
        out_off_ = 0;
        const size_t chunk = static_cast<size_t>(std::min<uint64_t>(pattern_left_, 64 * 1024));
        for (size_t i = 0; i < chunk; ++i)
          out_.push_back(static_cast<char>(pattern_byte(pattern_sent_ + i)));
        pattern_sent_ += chunk;
        pattern_left_ -= chunk;
      }
      if (out_off_ == out_.size()) break;
      const ssize_t w = ::send(fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno != EAGAIN) {
          error_ = errno;
          close_fd(false);
        }
        return;
      }
      out_off_ += static_cast<size_t>(w);
      sent_bytes_ += static_cast<uint64_t>(w);
      if (out_off_ == out_.size()) {
        out_.clear();
        out_off_ = 0;
      }
    }
    if (fd_ >= 0 && !blocked() && pattern_left_ == 0 && shut_pending_ && !shut_done_) {
      ::shutdown(fd_, SHUT_WR);
      shut_done_ = true;
    }
  }

  void update() {
    if (fd_ < 0 || !registered_) return;
    if (eof_ && shut_done_) {
      // Both ways closed: epoll would report EPOLLHUP on every wait. Kept open for the checks.
      loop_.remove(fd_);
      registered_ = false;
      return;
    }
    uint32_t events = 0;
    if (reading_ && !eof_ && (!echo_ || out_.size() - out_off_ < kEchoLimit)) events |= EPOLLIN;
    if (blocked() || pattern_left_ > 0) events |= EPOLLOUT;
    if (events != interest_) loop_.modify(fd_, events, this);
    interest_ = events;
  }

  void close_fd(bool reset) {
    if (fd_ < 0) return;
    if (registered_) loop_.remove(fd_);
    registered_ = false;
    if (reset) {
      linger abortive{1, 0};
      setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
    }
    ::close(fd_);
    fd_ = -1;
  }

  net::EventLoop& loop_;
  int fd_;
  bool registered_ = true;
  uint32_t interest_ = 0;
  std::string out_;
  size_t out_off_ = 0;
  uint64_t pattern_left_ = 0;
  uint64_t pattern_sent_ = 0;
  bool shut_pending_ = false;
  bool shut_done_ = false;
  bool echo_ = false;
  bool check_ = false;
  bool reading_ = true;
  std::string received_;
  uint64_t received_bytes_ = 0;
  uint64_t sent_bytes_ = 0;
  bool pattern_ok_ = true;
  bool eof_ = false;
  int error_ = 0;
};

// Runs the loop until `done()` holds: its ready work at once, then 1 ms naps while the kernel
// moves bytes; at most `limit`.
bool run_until(net::EventLoop& loop, const std::function<bool()>& done, Duration limit = 30s) {
  const TimePoint deadline = Clock::now() + limit;
  for (;;) {
    loop.run_ready();
    if (done()) return true;
    if (Clock::now() > deadline) return false;
    poll(nullptr, 0, 1);
  }
}

// A client connected to a relay whose destination is a listener of the test's.
class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    destination_listener_ = *net::listen_tcp({"127.0.0.1", 0}, false);
    destination_ = {"127.0.0.1", net::local_port(destination_listener_)};
  }
  void TearDown() override {
    relay_.reset();
    client_.reset();
    server_.reset();
    loop_.run_ready();
    if (destination_listener_ >= 0) close(destination_listener_);
  }

  // A relay whose client is one end of a Unix socketpair (the relay takes any stream socket):
  // unlike TCP, the client's end of stream reaches the relay's socket at once, even behind
  // bytes the relay has not read.
  void start_relay_with_socketpair_client(const config::SocketAddress& to) {
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    client_ = std::make_unique<Peer>(loop_, pair[0]);
    relay_ = std::make_unique<TcpRelay>(loop_, pair[1], to, RelayOptions{}, stats_, [this] {
      ++gone_;
      loop_.defer_delete(std::move(relay_));
    });
  }
  // A client connection accepted by a listener standing in for the outbound listener; its
  // accepted end goes to a new relay towards `to`.
  void start_relay(const config::SocketAddress& to, RelayOptions options = {},
                   const std::string& early_bytes = "") {
    int front = *net::listen_tcp({"127.0.0.1", 0}, false);
    const uint16_t port = net::local_port(front);
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto sa = net::to_sockaddr({"127.0.0.1", port});
    ASSERT_EQ(connect(client, sa->get(), sa->len), 0);
    int accepted = accept4(front, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(accepted, 0);
    close(front);
    if (!early_bytes.empty()) {
      ASSERT_EQ(::send(client, early_bytes.data(), early_bytes.size(), 0),
                static_cast<ssize_t>(early_bytes.size()));
    }
    client_ = std::make_unique<Peer>(loop_, client);
    relay_ = std::make_unique<TcpRelay>(loop_, accepted, to, options, stats_, [this] {
      ++gone_;
      loop_.defer_delete(std::move(relay_));
    });
  }
  // The destination's end of the relay's connection.
  void accept_destination() {
    int fd = -1;
    ASSERT_TRUE(run_until(loop_, [&] {
      fd = accept4(destination_listener_, nullptr, nullptr, SOCK_CLOEXEC);
      return fd >= 0;
    }));
    server_ = std::make_unique<Peer>(loop_, fd);
  }
  bool relay_gone() { return gone_ > 0 && !relay_; }

  net::EventLoop loop_;
  RelayStats stats_;
  int destination_listener_ = -1;
  config::SocketAddress destination_;
  std::unique_ptr<TcpRelay> relay_;
  std::unique_ptr<Peer> client_;
  std::unique_ptr<Peer> server_;
  int gone_ = 0;
};

TEST_F(RelayTest, EchoesSixtyFourMiBBothWaysAtOnceByteExact) {
  constexpr uint64_t kBytes = 64 * kMiB;
  start_relay(destination_);
  accept_destination();
  server_->echo();
  server_->check_pattern();
  client_->check_pattern();
  client_->send_pattern(kBytes);
  client_->shutdown_when_sent();
  size_t most_held = 0;
  ASSERT_TRUE(run_until(loop_, [&] {
    if (relay_)
      most_held = std::max({most_held, relay_->held_to_upstream(), relay_->held_to_downstream()});
    return client_->eof() && relay_gone();
  }, 120s)) << "client got " << client_->received_bytes();
  EXPECT_EQ(server_->received_bytes(), kBytes);
  EXPECT_EQ(client_->received_bytes(), kBytes);
  EXPECT_TRUE(server_->pattern_ok()) << "client → destination: a byte lost, repeated or moved";
  EXPECT_TRUE(client_->pattern_ok()) << "destination → client: a byte lost, repeated or moved";
  EXPECT_TRUE(server_->eof()) << "the client's end of stream was passed on";
  EXPECT_EQ(client_->error(), 0);
  EXPECT_LE(most_held, TcpRelay::kBufferBytes);
  EXPECT_EQ(stats_.bytes_to_upstream, kBytes);
  EXPECT_EQ(stats_.bytes_to_downstream, kBytes);
  EXPECT_EQ(stats_.connections_total, 1u);
  EXPECT_EQ(stats_.connections_active, 0u);
  EXPECT_EQ(stats_.resets, 0u);
  EXPECT_EQ(gone_, 1);
}

TEST_F(RelayTest, HalfCloseStillDeliversTheReply) {
  start_relay(destination_);
  accept_destination();
  client_->send("request");
  client_->shutdown_when_sent();
  ASSERT_TRUE(run_until(loop_, [&] { return server_->eof(); }));
  EXPECT_EQ(server_->received(), "request") << "the bytes before the end of stream";
  // The client's side is closed; the destination answers after it saw the end.
  server_->send("reply, part 1;");
  ASSERT_TRUE(run_until(loop_, [&] { return client_->received() == "reply, part 1;"; }));
  server_->send(" part 2");
  server_->shutdown_when_sent();
  ASSERT_TRUE(run_until(loop_, [&] { return client_->eof() && relay_gone(); }));
  EXPECT_EQ(client_->received(), "reply, part 1; part 2");
  EXPECT_EQ(client_->error(), 0);
  EXPECT_EQ(server_->error(), 0);
  EXPECT_EQ(stats_.resets, 0u);
  EXPECT_EQ(stats_.bytes_to_upstream, 7u);
  EXPECT_EQ(stats_.bytes_to_downstream, 21u);
}

TEST_F(RelayTest, DestinationThatSpeaksFirstIsHeardBeforeTheClientWrites) {
  start_relay(destination_);
  accept_destination();
  server_->send("220 mail.example ESMTP\r\n");  // SMTP: the server greets first
  ASSERT_TRUE(run_until(loop_, [&] { return client_->received() == "220 mail.example ESMTP\r\n"; }));
  EXPECT_EQ(client_->sent_bytes(), 0u);
  client_->send("QUIT\r\n");
  ASSERT_TRUE(run_until(loop_, [&] { return server_->received() == "QUIT\r\n"; }));
  server_->send("221 bye\r\n");
  server_->shutdown_when_sent();
  ASSERT_TRUE(run_until(loop_, [&] { return client_->eof(); }));
  client_->shutdown_when_sent();
  ASSERT_TRUE(run_until(loop_, [&] { return relay_gone(); }));
  EXPECT_EQ(client_->received(), "220 mail.example ESMTP\r\n221 bye\r\n");
  EXPECT_EQ(stats_.resets, 0u);
}

TEST_F(RelayTest, BytesTheClientSentBeforeTheRelayArriveFirst) {
  // What protocol detection peeked at is still in the socket: the relay reads it like the rest.
  start_relay(destination_, {}, "GET / HTTP/1.1\r\n");
  accept_destination();
  client_->send("Host: example\r\n\r\n");
  ASSERT_TRUE(run_until(loop_, [&] {
    return server_->received() == "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
  }));
}

TEST_F(RelayTest, DestinationResetResetsTheClient) {
  start_relay(destination_);
  accept_destination();
  client_->send("hello");
  ASSERT_TRUE(run_until(loop_, [&] { return server_->received() == "hello"; }));
  server_->reset();
  ASSERT_TRUE(run_until(loop_, [&] { return client_->closed() && relay_gone(); }));
  EXPECT_EQ(client_->error(), ECONNRESET) << strerror(client_->error());
  EXPECT_FALSE(client_->eof()) << "a reset, not an end of stream";
  EXPECT_EQ(stats_.resets, 1u);
  EXPECT_EQ(stats_.connections_active, 0u);
}

TEST_F(RelayTest, ClientResetResetsTheDestination) {
  start_relay(destination_);
  accept_destination();
  server_->send("hello");
  ASSERT_TRUE(run_until(loop_, [&] { return client_->received() == "hello"; }));
  client_->reset();
  ASSERT_TRUE(run_until(loop_, [&] { return server_->closed() && relay_gone(); }));
  EXPECT_EQ(server_->error(), ECONNRESET) << strerror(server_->error());
  EXPECT_EQ(stats_.resets, 1u);
}

TEST_F(RelayTest, DestinationCloseIsPassedOnAsEndOfStream) {
  start_relay(destination_);
  accept_destination();
  server_->send("bye");
  server_->shutdown_when_sent();
  ASSERT_TRUE(run_until(loop_, [&] { return client_->eof(); }));
  EXPECT_EQ(client_->received(), "bye");
  EXPECT_EQ(client_->error(), 0) << "a FIN, not a reset";
  EXPECT_FALSE(relay_gone()) << "the client may still send";
  client_->send("late");
  client_->shutdown_when_sent();
  ASSERT_TRUE(run_until(loop_, [&] { return server_->eof() && relay_gone(); }));
  EXPECT_EQ(server_->received(), "late");
  EXPECT_EQ(stats_.resets, 0u);
}

TEST_F(RelayTest, ConnectRefusedResetsTheClient) {
  // A port that is bound but does not listen refuses connections, and nobody else can take it.
  int bound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto sa = net::to_sockaddr({"127.0.0.1", 0});
  ASSERT_EQ(bind(bound, sa->get(), sa->len), 0);
  start_relay({"127.0.0.1", net::local_port(bound)}, {}, "early bytes");
  ASSERT_TRUE(run_until(loop_, [&] { return client_->closed() && relay_gone(); }));
  EXPECT_EQ(client_->error(), ECONNRESET) << strerror(client_->error());
  EXPECT_EQ(stats_.connect_failures, 1u);
  EXPECT_EQ(stats_.resets, 0u);
  EXPECT_EQ(stats_.connections_active, 0u);
  close(bound);
}

TEST_F(RelayTest, ConnectTimeoutResetsTheClient) {
  // A listener whose accept queue is full drops SYNs: the connect hangs.
  int full = *net::listen_tcp({"127.0.0.1", 0}, false, /*backlog=*/0);
  const uint16_t port = net::local_port(full);
  int queued = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto sa = net::to_sockaddr({"127.0.0.1", port});
  ASSERT_EQ(connect(queued, sa->get(), sa->len), 0);
  RelayOptions options;
  options.connect_timeout = 100ms;
  start_relay({"127.0.0.1", port}, options);
  ASSERT_TRUE(run_until(loop_, [&] { return client_->closed() && relay_gone(); }));
  EXPECT_EQ(client_->error(), ECONNRESET);
  EXPECT_EQ(stats_.connect_failures, 1u);
  close(queued);
  close(full);
}

TEST_F(RelayTest, IdleTimeoutClosesBothSides) {
  RelayOptions options;
  options.idle_timeout = 50ms;
  start_relay(destination_, options);
  accept_destination();
  client_->send("ping");
  ASSERT_TRUE(run_until(loop_, [&] { return server_->received() == "ping"; }));
  ASSERT_TRUE(run_until(loop_, [&] { return relay_gone(); }));
  ASSERT_TRUE(run_until(loop_, [&] { return client_->eof() && server_->eof(); }));
  EXPECT_EQ(stats_.idle_timeouts, 1u);
  EXPECT_EQ(stats_.resets, 0u);
}

TEST_F(RelayTest, RelayDestroyedWhileOpenResetsBothSides) {
  start_relay(destination_);
  accept_destination();
  client_->send("x");
  ASSERT_TRUE(run_until(loop_, [&] { return server_->received() == "x"; }));
  relay_.reset();  // the worker shutting down
  ASSERT_TRUE(run_until(loop_, [&] { return client_->closed() && server_->closed(); }));
  EXPECT_EQ(client_->error(), ECONNRESET);
  EXPECT_EQ(server_->error(), ECONNRESET);
  EXPECT_EQ(stats_.connections_active, 0u);
  EXPECT_EQ(gone_, 0) << "on_gone is for relays that end by themselves";
}

// A destination that stops reading: the relay keeps at most its buffer, stops reading the
// client (whose writes then block: back-pressure through TCP), and sleeps until the
// destination reads again; then every byte arrives, in order.
TEST_F(RelayTest, SlowReaderHoldsTheWriterBackWithABoundedBuffer) {
  constexpr uint64_t kBytes = 64 * kMiB;  // far more than the sockets' buffers hold
  start_relay(destination_);
  accept_destination();
  server_->set_reading(false);
  server_->check_pattern();
  client_->send_pattern(kBytes);
  client_->shutdown_when_sent();
  ASSERT_TRUE(run_until(loop_, [&] { return client_->blocked() && relay_->held_to_upstream() > 0; }));
  EXPECT_LE(relay_->held_to_upstream(), TcpRelay::kBufferBytes);
  EXPECT_LT(client_->sent_bytes(), kBytes) << "the client is held back";
  const uint64_t sent = client_->sent_bytes();
  // Nothing can move: the loop has nothing to do (no wake-up for a side that cannot progress).
  EXPECT_FALSE(loop_.run_ready());
  EXPECT_EQ(client_->sent_bytes(), sent);
  EXPECT_LE(relay_->held_to_upstream(), TcpRelay::kBufferBytes);

  server_->set_reading(true);
  ASSERT_TRUE(run_until(loop_, [&] { return server_->eof() && client_->sent_bytes() == kBytes; },
                        120s));
  EXPECT_EQ(server_->received_bytes(), kBytes);
  EXPECT_TRUE(server_->pattern_ok());
  EXPECT_EQ(relay_ ? relay_->held_to_upstream() : 0u, 0u);
}

// Both ends closed their sending side while the relay still holds bytes for the destination:
// the client's socket is hung up both ways (epoll reports EPOLLHUP on every wait), yet nothing
// can move until the destination reads. The relay must not spin meanwhile, and must still
// deliver every byte and then the end of stream.
TEST_F(RelayTest, HungUpClientWaitingForASlowDestinationDoesNotSpin) {
  start_relay_with_socketpair_client(destination_);
  accept_destination();
  server_->set_reading(false);
  server_->check_pattern();
  server_->shutdown_when_sent();  // the destination ends its side first
  ASSERT_TRUE(run_until(loop_, [&] { return client_->eof(); }));
  client_->send_pattern(64 * kMiB);
  ASSERT_TRUE(run_until(loop_, [&] { return client_->blocked() && relay_->held_to_upstream() > 0; }));
  client_->shutdown_now();
  const uint64_t sent = client_->sent_bytes();
  loop_.run_ready();
  EXPECT_FALSE(loop_.run_ready()) << "woken for nothing";
  EXPECT_FALSE(relay_gone());

  server_->set_reading(true);
  ASSERT_TRUE(run_until(loop_, [&] { return server_->eof() && relay_gone(); }, 120s));
  EXPECT_EQ(server_->received_bytes(), sent);
  EXPECT_TRUE(server_->pattern_ok());
  EXPECT_EQ(stats_.resets, 0u);
}

}  // namespace
}  // namespace h2mesh::proxy
