#include "proxy/protocol_detect.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace h2mesh::proxy {
namespace {
constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static_assert(sizeof(kPreface) - 1 == kHttp2PrefaceSize);
}  // namespace

const char* protocol_name(Protocol p) {
  switch (p) {
    case Protocol::Http2:
      return "http2";
    case Protocol::Tls:
      return "tls";
    case Protocol::Other:
      return "other";
  }
  return "?";
}

std::optional<Protocol> classify_first_bytes(const uint8_t* bytes, size_t size) {
  // A TLS record of type handshake (22) with major version 3 (SSL 3.0 .. TLS 1.3 all write 3.x
  // in the record layer of a ClientHello).
  if (size >= 1 && bytes[0] == 0x16) {
    if (size < 2) return std::nullopt;
    return bytes[1] == 0x03 ? Protocol::Tls : Protocol::Other;
  }
  const size_t n = std::min(size, kHttp2PrefaceSize);
  if (std::memcmp(bytes, kPreface, n) != 0) return Protocol::Other;
  if (n == kHttp2PrefaceSize) return Protocol::Http2;
  return std::nullopt;
}

ProtocolDetector::ProtocolDetector(net::EventLoop& loop, int fd, Duration timeout, Callback done)
    : loop_(loop),
      fd_(fd),
      started_(loop.now()),
      timer_(loop, [this] { decide(Protocol::Other); }),
      done_(std::move(done)) {
  // Bytes already queued count as an edge when the socket is added: they are seen in the loop's
  // next iteration, not here.
  loop_.add(fd_, EPOLLIN | EPOLLRDHUP | EPOLLET, this);
  registered_ = true;
  timer_.arm(timeout);
}

ProtocolDetector::~ProtocolDetector() {
  if (registered_) loop_.remove(fd_);
}

void ProtocolDetector::on_io(uint32_t events) {
  uint8_t peeked[kHttp2PrefaceSize];
  ssize_t n;
  do {
    n = ::recv(fd_, peeked, sizeof peeked, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    decide(Protocol::Other);  // a reset: the next owner sees the error itself
    return;
  }
  if (n == 0) {
    decide(Protocol::Other);  // end of stream before any byte
    return;
  }
  if (auto protocol = classify_first_bytes(peeked, static_cast<size_t>(n))) {
    decide(*protocol);
    return;
  }
  // A proper prefix of the preface. If the client ended its side, the rest never comes.
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) decide(Protocol::Other);
}

void ProtocolDetector::decide(Protocol protocol) {
  timer_.cancel();
  loop_.remove(fd_);
  registered_ = false;
  // Moved out: the callback may destroy this detector, and with it done_.
  Callback done = std::move(done_);
  done(protocol, loop_.now() - started_);
}

}  // namespace h2mesh::proxy
