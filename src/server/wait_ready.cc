#include "server/wait_ready.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

namespace h2mesh::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kPollInterval = std::chrono::milliseconds(100);

int millis_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for `events` on fd until the deadline. True when they came.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  while (true) {
    int n = poll(&p, 1, millis_left(deadline));
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

// One GET /ready; true for a 200. Any failure (refused, reset, timeout, another status) is
// false: the proxy may simply not be listening yet.
bool ready_once(const config::SocketAddress& admin, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(admin.host.c_str(), std::to_string(admin.port).c_str(), &hints, &found) != 0)
    return false;
  bool ready = false;
  for (addrinfo* a = found; a && !ready; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    bool connected = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    if (!connected && errno == EINPROGRESS && wait_for(fd, POLLOUT, deadline)) {
      int error = 0;
      socklen_t size = sizeof error;
      connected = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0;
    }
    const std::string request = "GET /ready HTTP/1.1\r\nHost: " + admin.to_string() +
                                "\r\nConnection: close\r\n\r\n";
    if (connected && send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                         static_cast<ssize_t>(request.size())) {
      // The status line is all we need: "HTTP/1.1 200 ...".
      std::string reply;
      char buffer[256];
      while (reply.find("\r\n") == std::string::npos && reply.size() < 1024 &&
             wait_for(fd, POLLIN, deadline)) {
        ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        reply.append(buffer, static_cast<size_t>(n));
      }
      ready = reply.starts_with("HTTP/1.") && reply.size() >= 12 && reply.compare(8, 4, " 200") == 0;
    }
    close(fd);
  }
  freeaddrinfo(found);
  return ready;
}

}  // namespace

bool wait_ready(const config::SocketAddress& admin, config::Millis timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    if (ready_once(admin, deadline)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(kPollInterval, deadline - Clock::now()));
  }
}

}  // namespace h2mesh::server
