#include "observe/otlp_http.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace h2mesh::observe {
namespace {

using Clock = std::chrono::steady_clock;

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 stopped (wake_fd).
int wait_for(int fd, short events, Clock::time_point deadline, int wake_fd) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return 0;
    pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    int n = ::poll(fds, wake_fd >= 0 ? 2 : 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 0;
    if (wake_fd >= 0 && (fds[1].revents & POLLIN)) return -1;
    if (fds[0].revents) return 1;
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

}  // namespace

bool parse_response_head(std::string_view head, int* status, std::chrono::milliseconds* retry_after) {
  // "HTTP/1.1 200 OK\r\n"
  if (!head.starts_with("HTTP/1.") || head.size() < 12 || head[8] != ' ') return false;
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return false;
    code = code * 10 + (head[i] - '0');
  }
  *status = code;
  *retry_after = std::chrono::milliseconds(0);
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t end = head.find("\r\n", pos + 2);
    std::string_view line = head.substr(pos + 2, end == std::string_view::npos ? end : end - pos - 2);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && lower(line.substr(0, colon)) == "retry-after") {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      long seconds = 0;
      bool digits = !v.empty() && v.size() < 7;
      for (char c : v) {
        if (c < '0' || c > '9') digits = false;
        else seconds = seconds * 10 + (c - '0');
      }
      // An HTTP date instead of seconds is ignored: the exporter's own backoff applies.
      if (digits) *retry_after = std::chrono::seconds(seconds);
    }
    pos = end;
  }
  return true;
}

OtlpAnswer post_otlp(const OtlpTarget& target, std::string_view body,
                     std::chrono::milliseconds timeout, int wake_fd) {
  OtlpAnswer answer;
  const auto deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(target.port);
  if (int rc = ::getaddrinfo(target.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    answer.error = "cannot resolve " + target.host + ": " + gai_strerror(rc);
    return answer;
  }
  int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    answer.error = std::string("socket: ") + std::strerror(errno);
    ::freeaddrinfo(found);
    return answer;
  }
  Socket socket(fd);
  int rc = ::connect(fd, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  auto give_up = [&](int waited, const char* what) {
    if (waited < 0) answer.stopped = true;
    answer.error = waited < 0 ? "stopped" : std::string("timed out ") + what;
    return answer;
  };
  if (rc < 0 && errno != EINPROGRESS) {
    answer.error = "connect to " + target.host + ":" + port + ": " + std::strerror(errno);
    return answer;
  }
  if (rc < 0) {
    if (int w = wait_for(fd, POLLOUT, deadline, wake_fd); w <= 0) return give_up(w, "connecting");
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      answer.error = "connect to " + target.host + ":" + port + ": " + std::strerror(err);
      return answer;
    }
  }
  // One request per connection: an export leaves about once a batch interval, and closing
  // makes the end of the answer plain whatever framing the receiver chose.
  std::string request = "POST " + target.path + " HTTP/1.1\r\nHost: " + target.host + ":" + port +
                        "\r\nContent-Type: application/x-protobuf\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  request.append(body);
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (int w = wait_for(fd, POLLOUT, deadline, wake_fd); w <= 0) return give_up(w, "sending");
    } else if (n < 0 && errno != EINTR) {
      answer.error = std::string("send: ") + std::strerror(errno);
      return answer;
    }
  }
  // Only the head matters (status, Retry-After): reading stops there and the connection closes.
  std::string head;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      if (head.size() < 16384) head.append(buf, static_cast<size_t>(n));
      if (head.find("\r\n\r\n") != std::string::npos) break;
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (int w = wait_for(fd, POLLIN, deadline, wake_fd); w <= 0) return give_up(w, "waiting for the answer");
    } else if (errno != EINTR) {
      answer.error = std::string("recv: ") + std::strerror(errno);
      return answer;
    }
  }
  if (!parse_response_head(head, &answer.status, &answer.retry_after)) {
    answer.status = 0;
    answer.error = head.empty() ? "connection closed without an answer" : "not an HTTP answer";
  }
  return answer;
}

}  // namespace h2mesh::observe
