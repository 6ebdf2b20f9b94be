#include "net/tls_transport.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "net/openssl_api.h"
#include "net/tls_context.h"

namespace h2mesh::net {
namespace {
const OpenSsl& S() { return *openssl(nullptr); }
}  // namespace

Result<std::unique_ptr<TlsTransport>> TlsTransport::accept(EventLoop& loop, SSL_CTX* ctx, int fd,
                                                           Duration handshake_timeout) {
  S().ERR_clear_error();
  SSL* ssl = S().SSL_new(ctx);
  if (!ssl || S().SSL_set_fd(ssl, fd) != 1) {
    std::string why = openssl_error_text("cannot create a TLS session");
    if (ssl) S().SSL_free(ssl);
    ::close(fd);
    return make_error(ErrorCode::Internal, why);
  }
  return std::unique_ptr<TlsTransport>(new TlsTransport(loop, ssl, fd, handshake_timeout));
}

TlsTransport::TlsTransport(EventLoop& loop, SSL* ssl, int fd, Duration handshake_timeout)
    : loop_(loop),
      ssl_(ssl),
      fd_(fd),
      handshake_timeout_(handshake_timeout),
      handshake_timer_(loop, [this] { handshake_failed("no TLS handshake within the deadline"); }) {
}

TlsTransport::~TlsTransport() {
  loop_.cancel_notify(this);
  if (registered_) loop_.remove(fd_);
  S().SSL_free(ssl_);
  ::close(fd_);
}

void TlsTransport::start(TransportHandler& handler) {
  handler_ = &handler;
  // The client speaks first: the handshake starts when its hello is readable.
  interest_ = EPOLLIN | EPOLLRDHUP;
  loop_.add(fd_, interest_, this);
  registered_ = true;
  handshake_timer_.arm(handshake_timeout_);
}

void TlsTransport::update_interest() {
  if (!registered_) return;
  const bool out = handshaking_ ? handshake_wants_write_ : (want_write_ || read_wants_write_);
  const uint32_t next = EPOLLIN | EPOLLRDHUP | (out ? uint32_t{EPOLLOUT} : 0u);
  if (next == interest_) return;
  interest_ = next;
  loop_.modify(fd_, interest_, this);
}

IoResult::Status TlsTransport::classify(int ret, bool reading) {
  const int err = S().SSL_get_error(ssl_, ret);
  bool& waits = reading ? read_wants_write_ : write_wants_read_;
  switch (err) {
    case SSL_ERROR_WANT_READ:
      waits = !reading;
      update_interest();
      return IoResult::Status::WouldBlock;
    case SSL_ERROR_WANT_WRITE:
      waits = reading;
      update_interest();
      return IoResult::Status::WouldBlock;
    case SSL_ERROR_ZERO_RETURN:
      return IoResult::Status::Eof;
    case SSL_ERROR_SYSCALL:
      if (errno == EINTR) return IoResult::Status::WouldBlock;
      error_ = make_error(ErrorCode::Io, errno ? strerror(errno) : "connection closed");
      return IoResult::Status::Failed;
    default:
      error_ = make_error(ErrorCode::Io, openssl_error_text("TLS error " + std::to_string(err)));
      return IoResult::Status::Failed;
  }
}

void TlsTransport::handshake() {
  S().ERR_clear_error();
  errno = 0;
  const int ret = S().SSL_accept(ssl_);
  if (ret == 1) {
    handshaking_ = false;
    handshake_timer_.cancel();
    update_interest();
    // The client's first request may have come with its last handshake message: have the owner
    // try a read even if epoll has nothing new to say.
    loop_.notify(this, EPOLLIN);
    handler_->on_transport_connected(nullptr);
    return;
  }
  const int err = S().SSL_get_error(ssl_, ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    handshake_wants_write_ = err == SSL_ERROR_WANT_WRITE;
    update_interest();
    return;
  }
  std::string why;
  if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN)
    why = errno ? strerror(errno) : "the client closed the connection";
  else
    why = openssl_error_text("TLS error " + std::to_string(err));
  handshake_failed("TLS handshake failed: " + why);
}

void TlsTransport::handshake_failed(const std::string& why) {
  handshaking_ = false;
  handshake_timer_.cancel();
  error_ = make_error(ErrorCode::DownstreamProtocol, why);
  // Nothing more from this peer: stop hearing about the socket before the owner does.
  if (registered_) {
    registered_ = false;
    loop_.remove(fd_);
  }
  handler_->on_transport_connected(&error_);
}

void TlsTransport::on_io(uint32_t events) {
  if (handshaking_) {
    handshake();
    return;
  }
  bool readable = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  bool writable = false;
  if ((events & EPOLLOUT) && read_wants_write_) readable = true;
  if (want_write_ && ((events & EPOLLOUT) || (write_wants_read_ && (events & EPOLLIN))))
    writable = true;
  if (readable || writable) handler_->on_transport_ready(readable, writable);
}

IoResult TlsTransport::read(uint8_t* buf, size_t len) {
  S().ERR_clear_error();
  errno = 0;
  const int n = S().SSL_read(ssl_, buf, static_cast<int>(len > INT_MAX ? INT_MAX : len));
  if (n > 0) {
    if (read_wants_write_) {
      read_wants_write_ = false;
      update_interest();
    }
    // Bytes OpenSSL decrypted but did not hand over are invisible to epoll: report them.
    if (S().SSL_pending(ssl_) > 0) loop_.notify(this, EPOLLIN);
    return {IoResult::Status::Done, static_cast<size_t>(n)};
  }
  return {classify(n, true)};
}

IoResult TlsTransport::write(const uint8_t* data, size_t len) {
  S().ERR_clear_error();
  errno = 0;
  const int n = S().SSL_write(ssl_, data, static_cast<int>(len > INT_MAX ? INT_MAX : len));
  if (n > 0) {
    write_wants_read_ = false;
    return {IoResult::Status::Done, static_cast<size_t>(n)};
  }
  return {classify(n, false)};
}

void TlsTransport::want_write(bool on) {
  if (on == want_write_) return;
  want_write_ = on;
  if (!handshaking_) update_interest();
}

void TlsTransport::shutdown() {
  if (!registered_) return;
  registered_ = false;
  handshake_timer_.cancel();
  loop_.cancel_notify(this);
  loop_.remove(fd_);
  // One try at close_notify; the socket closes whether or not it fit.
  if (!handshaking_) {
    S().ERR_clear_error();
    S().SSL_shutdown(ssl_);
    S().ERR_clear_error();
  }
  ::shutdown(fd_, SHUT_RDWR);
}

std::string TlsTransport::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  S().SSL_get0_alpn_selected(ssl_, &p, &n);
  return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

}  // namespace h2mesh::net
