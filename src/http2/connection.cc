#include "http2/connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "net/socket.h"

namespace h2mesh::http2 {
namespace {
// One read per readable connection per loop iteration: a large one, so that a stream of DATA
// costs few system calls (64 KiB -> 256 KiB: -11 % proxy CPU per MiB streamed). Pages of this
// per-thread buffer become resident only as far as reads fill it.
constexpr size_t kReadChunk = 256 * 1024;
// Stop pulling frames from the session once this much is waiting for the socket: beyond it the
// peers are held back by flow control instead of filling our memory.
constexpr size_t kOutHighWater = 64 * 1024;
thread_local uint8_t t_read_buf[kReadChunk];
}  // namespace

Connection::Connection(net::EventLoop& loop, int fd, Role role, const SessionOptions& opts,
                       bool connecting)
    : loop_(loop),
      fd_(fd),
      session_(role, *this, opts),
      keepalive_timer_(loop, [this] { on_keepalive_timer(); }),
      connecting_(connecting) {
  want_out_ = connecting;
  // Our SETTINGS go out with the first flush: after the connect (client), or after the client's
  // first bytes (server), so a non-HTTP/2 client's error reply is not preceded by binary frames.
  loop_.add(fd_, EPOLLIN | EPOLLRDHUP | (connecting ? uint32_t{EPOLLOUT} : 0u), this);
}

Connection::~Connection() {
  if (fd_ >= 0) {
    loop_.remove(fd_);
    ::close(fd_);
  }
}

void Connection::schedule_flush() {
  if (flush_scheduled_ || closed_ || connecting_) return;
  flush_scheduled_ = true;
  loop_.defer([this] { flush(); });
}

void Connection::close(const Error& why) {
  if (closed_) return;
  closed_ = true;
  keepalive_timer_.cancel();
  loop_.remove(fd_);
  ::shutdown(fd_, SHUT_RDWR);
  on_closed(why);  // may defer_delete this; the object stays valid until the iteration ends
}

void Connection::on_io(uint32_t events) {
  if (closed_) return;
  if (connecting_) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = net::socket_error(fd_);
    if (err != 0) {
      close(make_error(ErrorCode::ConnectFailed, strerror(err)));
      return;
    }
    connecting_ = false;
    start_keepalive();
    on_connected();
    if (closed_) return;
    flush();
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) handle_read();
  if (!closed_ && (events & EPOLLOUT)) flush();
}

void Connection::handle_read() {
  ssize_t n = ::read(fd_, t_read_buf, kReadChunk);
  if (n > 0) {
    last_read_ = loop_.now();
    if (close_after_flush_) return;  // discarding input while the error reply goes out
    auto rv = session_.receive(t_read_buf, static_cast<size_t>(n), loop_.now());
    if (!rv) {
      on_receive_error(rv.error());
      return;
    }
    schedule_flush();
    return;
  }
  if (n == 0) {
    close(make_error(ErrorCode::Io, "connection closed by peer"));
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    close(make_error(ErrorCode::Io, strerror(errno)));
  }
}

void Connection::set_keepalive(Duration interval, Duration timeout, bool only_with_calls) {
  keepalive_interval_ = interval;
  keepalive_timeout_ = timeout;
  keepalive_only_with_calls_ = only_with_calls;
  start_keepalive();
}

void Connection::start_keepalive() {
  if (keepalive_interval_.count() <= 0 || connecting_ || closed_) {
    keepalive_timer_.cancel();
    return;
  }
  last_read_ = loop_.now();
  keepalive_timer_.arm(keepalive_interval_);
}

void Connection::on_keepalive_timer() {
  if (closed_ || close_after_flush_) return;
  const TimePoint now = loop_.now();
  if (session_.ping_outstanding()) {
    if (now - ping_sent_ >= keepalive_timeout_) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(keepalive_timeout_).count();
      LOG_INFO("keepalive: no PING ACK within %lldms; closing the connection",
               static_cast<long long>(ms));
      close(make_error(ErrorCode::DeadlineExceeded,
                       "keepalive: no PING ACK within " + std::to_string(ms) + "ms"));
      return;
    }
    keepalive_timer_.arm_at(ping_sent_ + keepalive_timeout_);
    return;
  }
  if (now - last_read_ < keepalive_interval_) {
    keepalive_timer_.arm_at(last_read_ + keepalive_interval_);  // the peer spoke meanwhile
    return;
  }
  bool calls = false;
  for_each_stream([&](int32_t) { calls = true; });
  if (keepalive_only_with_calls_ && !calls) {
    keepalive_timer_.arm(keepalive_interval_);
    return;
  }
  // gRPC servers close clients that send a third PING without data in between, unless five
  // minutes passed since the previous one.
  constexpr auto kQuietPingInterval = std::chrono::minutes(5);
  if (session_.pings_without_data() >= 2 && now - last_ping_ < kQuietPingInterval) {
    keepalive_timer_.arm_at(last_ping_ + kQuietPingInterval);
    return;
  }
  session_.submit_ping();
  ping_sent_ = last_ping_ = now;
  schedule_flush();
  keepalive_timer_.arm(keepalive_timeout_);
}

void Connection::on_receive_error(const Error& why) {
  LOG_DEBUG("closing connection: %s", why.message.c_str());
  close_with_goaway(H2Error::ProtocolError);
}

void Connection::close_with_goaway(H2Error code) {
  if (close_after_flush_) return;
  session_.terminate(static_cast<uint32_t>(code));
  close_after_flush_ = true;
  schedule_flush();
}

void Connection::write_raw_and_close(const void* data, size_t len) {
  out_.append(data, len);
  close_after_flush_ = true;
  raw_only_ = true;
  schedule_flush();
}

void Connection::flush() {
  flush_scheduled_ = false;
  if (closed_ || connecting_) return;
  for (;;) {
    if (out_.size() < kOutHighWater && !close_after_flush_) {
      auto rv = session_.produce(out_, kOutHighWater);
      if (!rv) {
        close(rv.error());
        return;
      }
    } else if (close_after_flush_ && !raw_only_ && out_.size() < kOutHighWater) {
      (void)session_.produce(out_, kOutHighWater);  // a pending GOAWAY, if any
    }
    if (out_.empty()) break;
    ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      close(make_error(ErrorCode::Io, strerror(errno)));
      return;
    }
    out_.drain(static_cast<size_t>(n));
    if (!out_.empty()) break;  // the socket is full; wait for EPOLLOUT
  }
  out_.release_if_empty();
  update_interest();
  if (out_.empty()) {
    if (close_after_flush_) {
      close(make_error(ErrorCode::DownstreamProtocol, "closed after protocol error"));
    } else if (!session_.wants_read() && !session_.wants_write()) {
      close(make_error(ErrorCode::Ok, "session finished"));
    }
  }
}

void Connection::update_interest() {
  bool want = !out_.empty();
  if (want == want_out_) return;
  want_out_ = want;
  loop_.modify(fd_, EPOLLIN | EPOLLRDHUP | (want ? uint32_t{EPOLLOUT} : 0u), this);
}

}  // namespace h2mesh::http2
