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

// Bounds on what is read of an answer: an OTLP answer is a small protobuf message.
constexpr size_t kMaxHead = 16 << 10;
constexpr size_t kMaxBody = 1 << 20;
constexpr size_t kMaxChunkLine = 1024;

// A non-negative decimal of at most `max_digits` digits, nothing else.
std::optional<uint64_t> decimal(std::string_view v, size_t max_digits) {
  if (v.empty() || v.size() > max_digits) return std::nullopt;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

}  // namespace

bool parse_response_head(std::string_view head, ResponseHead* out) {
  // "HTTP/1.1 200 OK\r\n"
  if (!head.starts_with("HTTP/1.") || head.size() < 12 || head[8] != ' ') return false;
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return false;
    code = code * 10 + (head[i] - '0');
  }
  *out = ResponseHead{};
  out->status = code;
  const bool http10 = head[7] == '0';
  bool keep_alive = false;
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t end = head.find("\r\n", pos + 2);
    std::string_view line = head.substr(pos + 2, end == std::string_view::npos ? end : end - pos - 2);
    pos = end;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string name = lower(line.substr(0, colon));
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    if (name == "retry-after") {
      // An HTTP date instead of seconds is ignored: the exporter's own backoff applies.
      if (auto seconds = decimal(v, 6)) out->retry_after = std::chrono::seconds(*seconds);
    } else if (name == "content-length") {
      auto length = decimal(v, 18);
      // Two different lengths, or one that is not a number: the body's end is unknown.
      if (!length || (out->content_length && *out->content_length != *length)) out->close = true;
      else out->content_length = static_cast<size_t>(*length);
    } else if (name == "transfer-encoding") {
      out->chunked = lower(v).find("chunked") != std::string::npos;
    } else if (name == "connection") {
      const std::string options = lower(v);
      if (options.find("close") != std::string::npos) out->close = true;
      if (options.find("keep-alive") != std::string::npos) keep_alive = true;
    }
  }
  if (http10 && !keep_alive) out->close = true;
  return true;
}

std::optional<size_t> chunked_body_size(std::string_view body) {
  size_t at = 0;
  for (;;) {
    const size_t eol = body.find("\r\n", at);
    if (eol == std::string_view::npos) {
      if (body.size() - at > kMaxChunkLine) return std::nullopt;
      return 0;
    }
    // "1a3;extension\r\n"
    size_t size = 0, digits = 0;
    for (size_t i = at; i < eol && body[i] != ';'; ++i, ++digits) {
      const char c = body[i];
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0 || digits >= 8) return std::nullopt;
      size = size * 16 + static_cast<size_t>(d);
    }
    if (digits == 0) return std::nullopt;
    at = eol + 2;
    if (size == 0) {
      // Trailer lines, then the blank line that ends the body.
      for (;;) {
        const size_t end = body.find("\r\n", at);
        if (end == std::string_view::npos) return 0;
        if (end == at) return at + 2;
        at = end + 2;
      }
    }
    if (body.size() < at + size + 2) return 0;
    if (body.compare(at + size, 2, "\r\n") != 0) return std::nullopt;
    at += size + 2;
  }
}

// ---------------------------------------------------------------------------------------------
// OtlpClient

void OtlpClient::disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool OtlpClient::connect(Deadline deadline, int wake_fd, OtlpAnswer* answer) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(target_.port);
  if (int rc = ::getaddrinfo(target_.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    answer->error = "cannot resolve " + target_.host + ": " + gai_strerror(rc);
    return false;
  }
  const int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    answer->error = std::string("socket: ") + std::strerror(errno);
    ::freeaddrinfo(found);
    return false;
  }
  fd_ = fd;
  const int rc = ::connect(fd, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  int err = rc < 0 ? errno : 0;
  if (err == EINPROGRESS) {
    if (int w = wait_for(fd, POLLOUT, deadline, wake_fd); w <= 0) {
      answer->stopped = w < 0;
      answer->error = w < 0 ? "stopped" : "timed out connecting";
      disconnect();
      return false;
    }
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  }
  if (err != 0) {
    answer->error = "connect to " + target_.host + ":" + port + ": " + std::strerror(err);
    disconnect();
    return false;
  }
  ++connections_;
  return true;
}

OtlpAnswer OtlpClient::exchange(std::string_view body, Deadline deadline, int wake_fd,
                                bool* closed_unanswered) {
  OtlpAnswer answer;
  auto fail = [&](int waited, std::string why) {
    answer.stopped = waited < 0;
    answer.error = waited < 0 ? "stopped" : std::move(why);
    disconnect();
    return answer;
  };
  request_.clear();
  request_ += "POST ";
  request_ += target_.path;
  request_ += " HTTP/1.1\r\nHost: ";
  request_ += target_.host;
  request_ += ':';
  request_ += std::to_string(target_.port);
  request_ += "\r\nContent-Type: application/x-protobuf\r\nContent-Length: ";
  request_ += std::to_string(body.size());
  request_ += "\r\n\r\n";
  request_.append(body);
  for (size_t sent = 0; sent < request_.size();) {
    const ssize_t n = ::send(fd_, request_.data() + sent, request_.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (int w = wait_for(fd_, POLLOUT, deadline, wake_fd); w <= 0) return fail(w, "timed out sending");
    } else if (n < 0 && errno != EINTR) {
      *closed_unanswered = errno == EPIPE || errno == ECONNRESET;
      return fail(0, std::string("send: ") + std::strerror(errno));
    }
  }
  // The whole answer is read, so that the connection is ready for the next request; only the
  // head matters (status, Retry-After).
  in_.clear();
  ResponseHead head;
  size_t head_end = std::string::npos;
  bool eof = false;
  char buf[4096];
  for (;;) {
    if (head_end == std::string::npos) {
      const size_t blank = in_.find("\r\n\r\n");
      if (blank != std::string::npos) {
        if (!parse_response_head(std::string_view(in_).substr(0, blank + 4), &head))
          return fail(0, "not an HTTP answer");
        if (head.status < 200) {  // an interim answer (100 Continue): the real one follows
          in_.erase(0, blank + 4);
          continue;
        }
        head_end = blank + 4;
      } else if (in_.size() > kMaxHead) {
        return fail(0, "answer head over 16 KiB");
      } else if (eof) {
        *closed_unanswered = in_.empty();
        return fail(0, in_.empty() ? "connection closed without an answer" : "not an HTTP answer");
      }
    }
    if (head_end != std::string::npos) {
      const std::string_view rest = std::string_view(in_).substr(head_end);
      bool done = false;
      if (head.status == 204 || head.status == 304) {
        done = true;
      } else if (head.content_length && !head.chunked) {
        if (*head.content_length > kMaxBody) head.close = done = true;  // not worth reading
        done = done || rest.size() >= *head.content_length;
      } else if (head.chunked) {
        const std::optional<size_t> size = chunked_body_size(rest);
        if (!size || rest.size() > kMaxBody) head.close = done = true;
        done = done || *size > 0;
      } else {
        head.close = true;  // the body ends with the connection
        done = eof || rest.size() > kMaxBody;
      }
      // A body cut short by the end of the connection: the status still stands.
      if (done || eof) {
        answer.status = head.status;
        answer.retry_after = head.retry_after;
        if (head.close || eof) disconnect();
        return answer;
      }
    }
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      eof = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (int w = wait_for(fd_, POLLIN, deadline, wake_fd); w <= 0) {
        if (head_end != std::string::npos) {
          // The status came; only the rest of the body did not: the answer stands.
          answer.status = head.status;
          answer.retry_after = head.retry_after;
          disconnect();
          return answer;
        }
        return fail(w, "timed out waiting for the answer");
      }
    } else if (errno != EINTR) {
      *closed_unanswered = errno == ECONNRESET && in_.empty();
      return fail(0, std::string("recv: ") + std::strerror(errno));
    }
  }
}

OtlpAnswer OtlpClient::post(std::string_view body, std::chrono::milliseconds timeout,
                            int wake_fd) {
  const auto deadline = Clock::now() + timeout;
  OtlpAnswer answer;
  for (int round = 0; round < 2; ++round) {
    bool reused = fd_ >= 0;
    if (reused) {
      // Anything to read on an idle connection (its end, mostly) means it cannot take a request.
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) != 0) {
        disconnect();
        reused = false;
      }
    }
    if (fd_ < 0 && !connect(deadline, wake_fd, &answer)) return answer;
    bool closed_unanswered = false;
    answer = exchange(body, deadline, wake_fd, &closed_unanswered);
    // Only a kept connection that the receiver closed (or reset) without a byte of answer is
    // tried again, while time is left: it was closed as the request left, which it then never
    // saw. A timeout is not tried again: a slow receiver may still be working on the request.
    if (answer.status != 0 || answer.stopped || !reused || !closed_unanswered ||
        Clock::now() >= deadline)
      return answer;
  }
  return answer;
}

}  // namespace h2mesh::observe
