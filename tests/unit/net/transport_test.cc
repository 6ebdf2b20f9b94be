#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "net/event_loop.h"
#include "net/memory_transport.h"
#include "net/simulated_clock.h"
#include "net/socket.h"
#include "net/tcp_transport.h"

namespace h2mesh::net {
namespace {

using namespace std::chrono_literals;

// Records what a transport reports; reads everything readable and, like a real owner, shuts
// the transport down at the end of the stream and stops asking for writability once told
// (it has nothing queued).
class Recorder final : public TransportHandler {
 public:
  explicit Recorder(Transport& t) : t_(t) {}
  void on_transport_connected(const Error* failure) override {
    connected = true;
    if (failure) connect_error = failure->message;
  }
  void on_transport_ready(bool readable, bool writable) override {
    if (writable) {
      ++writable_reports;
      t_.want_write(false);
    }
    if (!readable) return;
    uint8_t buf[4096];
    for (;;) {
      auto r = t_.read(buf, sizeof buf);
      if (r.status == IoResult::Status::Done) {
        data.append(reinterpret_cast<char*>(buf), r.bytes);
        continue;
      }
      if (r.status == IoResult::Status::Eof) eof = true;
      if (r.status == IoResult::Status::Failed) failed = true;
      if (eof || failed) t_.shutdown();
      break;
    }
  }
  IoResult write(const std::string& s) {
    return t_.write(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }

  Transport& t_;
  bool connected = false;
  std::string connect_error;
  std::string data;
  bool eof = false;
  bool failed = false;
  int writable_reports = 0;
};

TEST(MemoryTransport, PairCarriesBytesBothWaysThenEndOfStream) {
  SimulatedClock clock;
  EventLoop loop(clock);
  auto pair = MemoryTransport::pair(loop, loop);
  Recorder client(*pair.client), server(*pair.server);
  pair.client->start(client);
  pair.server->start(server);
  EXPECT_TRUE(pair.client->connecting());
  EXPECT_EQ(client.write("early").status, IoResult::Status::WouldBlock) << "not connected yet";
  clock.run_ready();
  EXPECT_TRUE(client.connected);
  EXPECT_EQ(client.connect_error, "");

  EXPECT_EQ(client.write("ping").bytes, 4u);
  EXPECT_EQ(server.data, "") << "delivered in the next iteration, not inside write()";
  clock.run_ready();
  EXPECT_EQ(server.data, "ping");
  EXPECT_EQ(server.write("pong").bytes, 4u);
  pair.server->shutdown();
  clock.run_ready();
  EXPECT_EQ(client.data, "pong") << "bytes written before the end still arrive";
  EXPECT_TRUE(client.eof);
  EXPECT_EQ(server.write("x").status, IoResult::Status::Failed) << "after its own shutdown";
  EXPECT_NE(pair.server->last_error().message, "");
  EXPECT_EQ(clock.elapsed(), Duration::zero());
}

TEST(MemoryTransport, FullBufferBlocksTheWriterUntilTheReaderMakesRoom) {
  SimulatedClock clock;
  EventLoop loop(clock);
  auto pair = MemoryTransport::pair(loop, loop, /*capacity=*/8);
  Recorder client(*pair.client), server(*pair.server);
  pair.client->start(client);
  pair.server->start(server);
  clock.run_ready();
  pair.server->set_stalled(true);  // a reader that does not read
  EXPECT_EQ(client.write("0123456789").bytes, 8u) << "takes what fits";
  EXPECT_EQ(client.write("89").status, IoResult::Status::WouldBlock);
  pair.client->want_write(true);
  clock.run_ready();
  EXPECT_EQ(client.writable_reports, 0) << "no room, no report";
  EXPECT_EQ(pair.server->unread(), 8u);

  pair.server->set_stalled(false);
  clock.run_ready();
  EXPECT_EQ(server.data, "01234567");
  EXPECT_EQ(client.writable_reports, 1);
  EXPECT_EQ(client.write("89").bytes, 2u);
  clock.run_ready();
  EXPECT_EQ(server.data, "0123456789");
}

TEST(MemoryTransport, DestroyedPeerIsSeenAsEndOfStream) {
  SimulatedClock clock;
  EventLoop loop(clock);
  auto pair = MemoryTransport::pair(loop, loop);
  Recorder server(*pair.server);
  pair.server->start(server);
  pair.client.reset();
  clock.run_ready();
  EXPECT_TRUE(server.eof);
  EXPECT_FALSE(loop.run_ready()) << "the end of the stream is reported, not repeated forever";
}

TEST(MemoryTransport, UnconnectableEndsRefuseOrNeverAnswer) {
  SimulatedClock clock;
  EventLoop loop(clock);
  auto refused =
      MemoryTransport::unconnectable(loop, make_error(ErrorCode::ConnectFailed, "refused"));
  auto hole = MemoryTransport::unconnectable(loop, std::nullopt);
  Recorder r(*refused), h(*hole);
  refused->start(r);
  hole->start(h);
  clock.advance(1h);
  EXPECT_TRUE(r.connected);
  EXPECT_EQ(r.connect_error, "refused");
  EXPECT_FALSE(h.connected);
  EXPECT_TRUE(hole->connecting());
}

TEST(TcpTransport, SocketpairCarriesBytesThenEndOfStream) {
  EventLoop loop;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  TcpTransport a(loop, sv[0], false), b(loop, sv[1], false);
  Recorder ra(a), rb(b);
  a.start(ra);
  b.start(rb);
  EXPECT_EQ(ra.write("hello").bytes, 5u);
  // A socketpair's bytes are in the peer's buffer when send() returns: epoll reports them to
  // the next non-blocking iteration.
  loop.run_ready();
  EXPECT_EQ(rb.data, "hello");
  a.shutdown();
  loop.run_ready();
  EXPECT_TRUE(rb.eof);
  EXPECT_FALSE(loop.run_ready()) << "nothing more once both ends are shut";
}

TEST(TcpTransport, RefusedConnectIsReported) {
  auto fd = listen_tcp(config::SocketAddress{"127.0.0.1", 0}, false);
  ASSERT_TRUE(fd.ok());
  const uint16_t port = local_port(*fd);
  ::close(*fd);
  EventLoop loop;
  auto t = tcp_connector().connect(loop, config::SocketAddress{"127.0.0.1", port});
  if (!t) {  // the kernel may refuse a loopback connect inside connect() already
    EXPECT_EQ(t.error().code, ErrorCode::ConnectFailed) << t.error().message;
    return;
  }
  Recorder r(**t);
  (*t)->start(r);
  Timer poll(loop, [&] {
    if (r.connected)
      loop.stop();
    else
      poll.arm(1ms);
  });
  Timer give_up(loop, [&] { loop.stop(); });
  loop.update_now();
  poll.arm(Duration::zero());
  give_up.arm(10s);
  loop.run();
  EXPECT_TRUE(r.connected);
  EXPECT_NE(r.connect_error, "");
}

}  // namespace
}  // namespace h2mesh::net
