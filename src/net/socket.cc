#include "net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace h2mesh::net {

Result<SockAddr> to_sockaddr(const config::SocketAddress& address) {
  SockAddr out;
  if (address.is_ipv6()) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(address.port);
    if (inet_pton(AF_INET6, address.host.c_str(), &sin6->sin6_addr) != 1)
      return make_error(ErrorCode::InvalidArgument, "bad IPv6 address " + address.host);
    out.len = sizeof(sockaddr_in6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out.storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(address.port);
    if (inet_pton(AF_INET, address.host.c_str(), &sin->sin_addr) != 1)
      return make_error(ErrorCode::InvalidArgument, "bad IPv4 address " + address.host);
    out.len = sizeof(sockaddr_in);
  }
  return out;
}

uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

Result<int> listen_tcp(const config::SocketAddress& address, bool reuse_port, int backlog) {
  auto sa = to_sockaddr(address);
  if (!sa) return sa.error();
  int fd = socket(sa->storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(ErrorCode::Io, std::string("socket: ") + strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (address.is_ipv6()) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, sa->get(), sa->len) != 0 || listen(fd, backlog) != 0) {
    std::string msg = "listen on " + address.to_string() + ": " + strerror(errno);
    close(fd);
    return make_error(ErrorCode::Io, msg);
  }
  return fd;
}

Result<int> connect_tcp(const config::SocketAddress& address) {
  auto sa = to_sockaddr(address);
  if (!sa) return sa.error();
  int fd = socket(sa->storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(ErrorCode::Io, std::string("socket: ") + strerror(errno));
  set_nodelay(fd);
  if (connect(fd, sa->get(), sa->len) != 0 && errno != EINPROGRESS) {
    std::string msg = std::string("connect: ") + strerror(errno);
    close(fd);
    return make_error(ErrorCode::ConnectFailed, msg);
  }
  return fd;
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void reset_and_close(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);
}

}  // namespace h2mesh::net
