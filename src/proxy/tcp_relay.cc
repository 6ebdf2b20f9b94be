#include "proxy/tcp_relay.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "net/socket.h"

namespace h2mesh::proxy {
namespace {

// One per worker thread, allocated by its first relay: every read lands here and is written on
// at once, so a relay whose peers keep up holds no memory of its own.
uint8_t* scratch() {
  thread_local std::unique_ptr<uint8_t[]> buffer;
  if (!buffer) buffer = std::make_unique_for_overwrite<uint8_t[]>(TcpRelay::kBufferBytes);
  return buffer.get();
}

bool would_block() { return errno == EAGAIN || errno == EWOULDBLOCK; }

ssize_t read_some(int fd, uint8_t* buf, size_t len) {
  ssize_t n;
  do {
    n = ::read(fd, buf, len);
  } while (n < 0 && errno == EINTR);
  return n;
}

ssize_t write_some(int fd, const uint8_t* data, size_t len) {
  ssize_t n;
  do {
    n = ::send(fd, data, len, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n;
}

}  // namespace

TcpRelay::TcpRelay(net::EventLoop& loop, int client_fd, const config::SocketAddress& destination,
                   const RelayOptions& options, RelayStats& stats, std::function<void()> on_gone)
    : loop_(loop),
      stats_(stats),
      on_gone_(std::move(on_gone)),
      options_(options),
      timer_(loop, [this] { on_timer(); }),
      last_activity_(loop.now()) {
  ++stats_.connections_total;
  ++stats_.connections_active;
  client_.relay = this;
  upstream_.relay = this;
  to_upstream_.from = &client_;
  to_upstream_.to = &upstream_;
  to_upstream_.bytes = &stats_.bytes_to_upstream;
  to_downstream_.from = &upstream_;
  to_downstream_.to = &client_;
  to_downstream_.bytes = &stats_.bytes_to_downstream;

  client_.fd = client_fd;
  fcntl(client_fd, F_SETFL, fcntl(client_fd, F_GETFL) | O_NONBLOCK);
  net::set_nodelay(client_fd);
  // Interest 0 while connecting: the client is not read yet, but a reset is still reported.
  loop_.add(client_.fd, 0, &client_);
  client_.registered = true;

  auto fd = net::connect_tcp(destination);
  if (!fd) {
    // Refused at once (unreachable network, no address): failed from the loop, like any other
    // connect failure, so that on_gone never runs inside the constructor.
    LOG_DEBUG("relay to %s: %s", destination.to_string().c_str(), fd.error().message.c_str());
    timer_.arm(Duration::zero());
    return;
  }
  upstream_.fd = *fd;
  upstream_.interest = EPOLLOUT;  // writability is how the kernel says the connect finished
  loop_.add(upstream_.fd, upstream_.interest, &upstream_);
  upstream_.registered = true;
  timer_.arm(options_.connect_timeout);
}

TcpRelay::~TcpRelay() {
  if (open_) close_sockets(/*reset=*/true);
}

void TcpRelay::on_io(Side& side, uint32_t events) {
  if (connecting_) {
    if (&side == &upstream_ && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      on_connected();
    } else if (events & (EPOLLERR | EPOLLHUP)) {
      abort(/*connect_failure=*/false);  // the client reset while we were connecting
    }
    return;
  }
  // A reset (or any socket error) on one side: what the peer would have seen is a reset too.
  if (events & EPOLLERR) {
    abort(false);
    return;
  }
  if (events & EPOLLHUP) side.hung_up = true;
  Flow& out = &side == &client_ ? to_upstream_ : to_downstream_;  // read from `side`
  Flow& in = &side == &client_ ? to_downstream_ : to_upstream_;   // written to `side`
  if ((events & (EPOLLIN | EPOLLHUP)) && pump(out, /*readable=*/true) == Step::Fail) {
    abort(false);
    return;
  }
  if ((events & EPOLLOUT) && pump(in, /*readable=*/false) == Step::Fail) {
    abort(false);
    return;
  }
  if (to_upstream_.shut && to_downstream_.shut) {
    finish();
    return;
  }
  update_interest(client_);
  update_interest(upstream_);
}

void TcpRelay::on_connected() {
  if (int err = net::socket_error(upstream_.fd); err != 0) {
    LOG_DEBUG("relay connect: %s", strerror(err));
    abort(/*connect_failure=*/true);
    return;
  }
  connecting_ = false;
  last_activity_ = loop_.now();
  if (options_.idle_timeout > Duration::zero()) {
    timer_.arm(options_.idle_timeout);
  } else {
    timer_.cancel();
  }
  update_interest(client_);
  update_interest(upstream_);
}

void TcpRelay::on_timer() {
  if (connecting_) {
    abort(/*connect_failure=*/true);  // timed out, or failed before it started
    return;
  }
  // Re-armed only when it fires (not on every read): the deadline moves with the last activity.
  const TimePoint deadline = last_activity_ + options_.idle_timeout;
  if (loop_.now() < deadline) {
    timer_.arm_at(deadline);
    return;
  }
  ++stats_.idle_timeouts;
  finish();
}

TcpRelay::Step TcpRelay::pump(Flow& flow, bool readable) {
  if (flow.held) {
    if (flush_held(flow) == Step::Fail) return Step::Fail;
    if (flow.held) return Step::Continue;  // the receiver is still full: read nothing more
  }
  if (flow.eof) {
    // The end of stream waited for the bytes before it.
    if (!flow.shut) {
      ::shutdown(flow.to->fd, SHUT_WR);
      flow.shut = true;
    }
    return Step::Continue;
  }
  if (!readable) return Step::Continue;
  uint8_t* buf = scratch();
  const ssize_t n = read_some(flow.from->fd, buf, kBufferBytes);
  if (n < 0) return would_block() ? Step::Continue : Step::Fail;
  if (n == 0) {
    flow.eof = true;
    ::shutdown(flow.to->fd, SHUT_WR);
    flow.shut = true;
    return Step::Continue;
  }
  last_activity_ = loop_.now();
  ssize_t w = write_some(flow.to->fd, buf, static_cast<size_t>(n));
  if (w < 0) {
    if (!would_block()) return Step::Fail;
    w = 0;
  }
  *flow.bytes += static_cast<uint64_t>(w);
  if (w < n) hold(flow, buf + w, static_cast<size_t>(n - w));
  return Step::Continue;
}

TcpRelay::Step TcpRelay::flush_held(Flow& flow) {
  const ssize_t w =
      write_some(flow.to->fd, flow.held.get() + flow.held_off, flow.held_size - flow.held_off);
  if (w < 0) return would_block() ? Step::Continue : Step::Fail;
  last_activity_ = loop_.now();
  *flow.bytes += static_cast<uint64_t>(w);
  flow.held_off += static_cast<size_t>(w);
  if (flow.held_off == flow.held_size) {
    // Given back: a relay that is not backed up holds no buffer.
    flow.held.reset();
    flow.held_off = flow.held_size = 0;
  }
  return Step::Continue;
}

void TcpRelay::hold(Flow& flow, const uint8_t* data, size_t size) {
  // Only reached with nothing held: a flow with held bytes does not read.
  if (!flow.held) flow.held = std::make_unique_for_overwrite<uint8_t[]>(kBufferBytes);
  std::memcpy(flow.held.get(), data, size);
  flow.held_off = 0;
  flow.held_size = size;
}

uint32_t TcpRelay::wanted_interest(const Side& side) const {
  const Flow& out = &side == &client_ ? to_upstream_ : to_downstream_;
  const Flow& in = &side == &client_ ? to_downstream_ : to_upstream_;
  uint32_t events = 0;
  if (!out.eof && !out.held) events |= EPOLLIN;
  if (in.held) events |= EPOLLOUT;
  return events;
}

void TcpRelay::update_interest(Side& side) {
  const uint32_t wanted = wanted_interest(side);
  if (side.hung_up && wanted == 0) {
    // A socket whose peer's end of stream waits behind bytes its peer cannot take yet: EPOLLHUP
    // would wake the loop for nothing until they are written. Out of epoll until then: all it
    // can still give is already queued in it.
    if (side.registered) loop_.remove(side.fd);
    side.registered = false;
    side.interest = 0;
    return;
  }
  if (!side.registered) {
    loop_.add(side.fd, wanted, &side);
    side.registered = true;
    side.interest = wanted;
    return;
  }
  if (wanted == side.interest) return;
  side.interest = wanted;
  loop_.modify(side.fd, wanted, &side);
}

void TcpRelay::finish() {
  close_sockets(/*reset=*/false);
  auto gone = std::move(on_gone_);
  if (gone) gone();
}

void TcpRelay::abort(bool connect_failure) {
  if (connect_failure) {
    ++stats_.connect_failures;
  } else {
    ++stats_.resets;
  }
  close_sockets(/*reset=*/true);
  auto gone = std::move(on_gone_);
  if (gone) gone();
}

void TcpRelay::close_sockets(bool reset) {
  timer_.cancel();
  for (Side* side : {&client_, &upstream_}) {
    if (side->fd < 0) continue;
    if (side->registered) loop_.remove(side->fd);
    side->registered = false;
    if (reset) {
      // Closing with a zero linger time sends RST instead of FIN.
      linger abortive{1, 0};
      setsockopt(side->fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
    }
    ::close(side->fd);
    side->fd = -1;
  }
  to_upstream_.held.reset();
  to_downstream_.held.reset();
  to_upstream_.held_off = to_upstream_.held_size = 0;
  to_downstream_.held_off = to_downstream_.held_size = 0;
  open_ = false;
  --stats_.connections_active;
}

}  // namespace h2mesh::proxy
