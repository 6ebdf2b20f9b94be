#include "net/tcp_transport.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/socket.h"

namespace h2mesh::net {

TcpTransport::TcpTransport(EventLoop& loop, int fd, bool connecting)
    : loop_(loop), fd_(fd), connecting_(connecting) {}

TcpTransport::~TcpTransport() {
  if (registered_) loop_.remove(fd_);
  if (fd_ >= 0) ::close(fd_);
}

uint32_t TcpTransport::interest() const {
  // While connecting, writability is how the kernel says the connect finished.
  return EPOLLIN | EPOLLRDHUP | (connecting_ || want_write_ ? uint32_t{EPOLLOUT} : 0u);
}

void TcpTransport::start(TransportHandler& handler) {
  handler_ = &handler;
  loop_.add(fd_, interest(), this);
  registered_ = true;
}

void TcpTransport::on_io(uint32_t events) {
  if (connecting_) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    connecting_ = false;
    if (int err = socket_error(fd_); err != 0) {
      Error why = make_error(ErrorCode::ConnectFailed, strerror(err));
      handler_->on_transport_connected(&why);
      return;
    }
    if (!want_write_) loop_.modify(fd_, interest(), this);
    handler_->on_transport_connected(nullptr);
    return;
  }
  const bool readable = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  const bool writable = (events & EPOLLOUT) && want_write_;
  if (readable || writable) handler_->on_transport_ready(readable, writable);
}

IoResult TcpTransport::read(uint8_t* buf, size_t len) {
  ssize_t n = ::read(fd_, buf, len);
  if (n > 0) return {IoResult::Status::Done, static_cast<size_t>(n)};
  if (n == 0) return {IoResult::Status::Eof};
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    return {IoResult::Status::WouldBlock};
  errno_ = errno;
  return {IoResult::Status::Failed};
}

IoResult TcpTransport::write(const uint8_t* data, size_t len) {
  for (;;) {
    ssize_t n = ::send(fd_, data, len, MSG_NOSIGNAL);
    if (n >= 0) return {IoResult::Status::Done, static_cast<size_t>(n)};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoResult::Status::WouldBlock};
    errno_ = errno;
    return {IoResult::Status::Failed};
  }
}

void TcpTransport::want_write(bool on) {
  if (on == want_write_) return;
  want_write_ = on;
  // While connecting the socket waits for writability anyway.
  if (registered_ && !connecting_) loop_.modify(fd_, interest(), this);
}

void TcpTransport::shutdown() {
  if (!registered_) return;
  registered_ = false;
  loop_.remove(fd_);
  ::shutdown(fd_, SHUT_RDWR);
}

Error TcpTransport::last_error() const { return make_error(ErrorCode::Io, strerror(errno_)); }

namespace {
class TcpConnector final : public Connector {
 public:
  Result<std::unique_ptr<Transport>> connect(EventLoop& loop,
                                             const config::SocketAddress& address) override {
    auto fd = connect_tcp(address);
    if (!fd) return fd.error();
    return std::unique_ptr<Transport>(std::make_unique<TcpTransport>(loop, *fd, true));
  }
};
}  // namespace

Connector& tcp_connector() {
  static TcpConnector connector;
  return connector;
}

}  // namespace h2mesh::net
