#pragma once

#include <sys/socket.h>

#include <string>

#include "common/result.h"
#include "config/config.h"

namespace h2mesh::net {

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

Result<SockAddr> to_sockaddr(const config::SocketAddress& address);
// The port a bound socket ended up on (for port 0 listeners).
uint16_t local_port(int fd);

// A non-blocking listening socket with SO_REUSEADDR and, when `reuse_port`, SO_REUSEPORT so that
// every worker can own one for the same address.
Result<int> listen_tcp(const config::SocketAddress& address, bool reuse_port, int backlog = 1024);

// Starts a non-blocking connect. The fd is returned at once; completion is reported as EPOLLOUT.
Result<int> connect_tcp(const config::SocketAddress& address);

// SO_ERROR of a connecting socket: 0 when the connect succeeded.
int socket_error(int fd);

void set_nodelay(int fd);

// Closes a connected socket with a reset (SO_LINGER 0) instead of a FIN: the peer sees
// ECONNRESET, as when nothing listened.
void reset_and_close(int fd);

}  // namespace h2mesh::net
