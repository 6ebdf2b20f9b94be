#include "lab/kube_api_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace h2mesh::lab {
namespace {

constexpr size_t kMaxRequestHead = 16 * 1024;

bool send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

bool send_chunk(int fd, const std::string& data) {
  if (data.empty()) return true;  // an empty chunk would end the stream
  char size[24];  // 16 hex digits, CRLF, NUL
  snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return send_all(fd, size + data + "\r\n");
}

bool reply_json(int fd, int code, const char* reason, const std::string& body, bool keep_alive) {
  return send_all(fd, "HTTP/1.1 " + std::to_string(code) + " " + reason +
                          "\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) +
                          (keep_alive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n") + body) &&
         keep_alive;
}

bool reply_status(int fd, int code, const char* reason, const std::string& message,
                  bool keep_alive) {
  return reply_json(fd, code, reason, status_json(code, reason, message).dump(), keep_alive);
}

// The value of a request header (name in lower case), "" when absent.
std::string header(const std::string& head, const std::string& name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos + 2 < head.size()) {
    size_t end = head.find("\r\n", pos + 2);
    std::string line = head.substr(pos + 2, end == std::string::npos ? end : end - pos - 2);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string key = line.substr(0, colon);
      for (auto& c : key) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      if (key == name) {
        size_t v = line.find_first_not_of(" \t", colon + 1);
        return v == std::string::npos ? "" : line.substr(v);
      }
    }
    pos = end;
  }
  return "";
}

}  // namespace

KubeApiServer::KubeApiServer(ObjectStore& store, int listen_fd, Settings settings)
    : store_(store), settings_(std::move(settings)), listen_fd_(listen_fd) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

KubeApiServer::~KubeApiServer() {
  stopping_ = true;
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  acceptor_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);  // blocked reads and writes return
  }
  store_.wake();                          // watches waiting for a change look at stopping_
  for (auto& t : connections_) t.join();  // no new ones: the acceptor is gone
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void KubeApiServer::accept_loop() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the client gave up already, or out of fds: try the next
    std::lock_guard lock(mu_);
    open_fds_.insert(fd);
    connections_.emplace_back([this, fd] { serve(fd); });
  }
}

void KubeApiServer::serve(int fd) {
  std::string buffer;
  char chunk[4096];
  bool open = true;
  while (open && !stopping_) {
    size_t end = buffer.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (buffer.size() > kMaxRequestHead) {
        (void)reply_status(fd, 431, "Request Header Fields Too Large", "request head too large",
                           false);
        break;
      }
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
      continue;
    }
    std::string head = buffer.substr(0, end + 2);
    buffer.erase(0, end + 4);
    open = answer(fd, head);
  }
  std::lock_guard lock(mu_);
  open_fds_.erase(fd);
  ::close(fd);
}

bool KubeApiServer::answer(int fd, const std::string& head) {
  const std::string line = head.substr(0, head.find("\r\n"));
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || line.compare(sp2 + 1, 7, "HTTP/1.") != 0)
    return reply_status(fd, 400, "Bad Request", "not an HTTP/1.1 request", false);
  const std::string method = line.substr(0, sp1);
  const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string connection = header(head, "connection");
  for (auto& c : connection) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  const bool keep_alive = connection != "close" && line.compare(sp2 + 1, 8, "HTTP/1.0") != 0;
  const std::string length = header(head, "content-length");
  if ((!length.empty() && length != "0") || !header(head, "transfer-encoding").empty())
    return reply_status(fd, 400, "Bad Request", "a request body is not expected", false);
  if (method != "GET")
    return reply_status(fd, 405, "Method Not Allowed", "only GET is served", keep_alive);
  if (!settings_.token.empty() && header(head, "authorization") != "Bearer " + settings_.token)
    return reply_status(fd, 401, "Unauthorized", "Unauthorized", keep_alive);
  auto q = parse_api_target(target);
  if (!q) {
    return q.error().code == ErrorCode::NoRoute
               ? reply_status(fd, 404, "Not Found", q.error().message, keep_alive)
               : reply_status(fd, 400, "Bad Request", q.error().message, keep_alive);
  }
  if (!q->watch) {
    ++lists_;
    return reply_json(fd, 200, "OK", store_.list(*q).dump(), keep_alive);
  }
  ++watches_;
  return watch(fd, *q) && keep_alive;
}

bool KubeApiServer::watch(int fd, const ApiQuery& q) {
  uint64_t sent = 0;
  std::string first;  // what the stream starts with
  if (q.resource_version.empty() || q.resource_version == "0") {
    first = store_.state_as_added(q, &sent);
  } else {
    char* end = nullptr;
    unsigned long long rv = strtoull(q.resource_version.c_str(), &end, 10);
    if (*end != '\0')
      return reply_status(fd, 400, "Bad Request",
                          "invalid resourceVersion '" + q.resource_version + "'", true);
    // The store keeps its whole history, so no resourceVersion it handed out is too old (no
    // 410). One it has not reached yet is answered from where it is.
    sent = std::min<uint64_t>(rv, store_.resource_version());
  }
  if (!send_all(fd,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n") ||
      !send_chunk(fd, first))
    return false;
  const int seconds = q.timeout_seconds > 0 ? q.timeout_seconds : settings_.default_watch_seconds;
  const TimePoint deadline = Clock::now() + std::chrono::seconds(seconds);
  TimePoint next_bookmark = Clock::now() + settings_.bookmark_interval;
  while (!stopping_) {
    uint64_t now_rv = 0;
    std::string lines = store_.events_after(q, sent, &now_rv);
    sent = now_rv;
    const TimePoint now = Clock::now();
    if (q.bookmarks && now >= next_bookmark) {
      // Every change up to now_rv was sent above: a watch may resume from here.
      lines +=
          nlohmann::json{
              {"type", "BOOKMARK"},
              {"object",
               {{"kind", q.resource == Resource::Services ? "Service" : "EndpointSlice"},
                {"apiVersion", q.resource == Resource::Services ? "v1" : "discovery.k8s.io/v1"},
                {"metadata", {{"resourceVersion", std::to_string(sent)}}}}}}
              .dump() +
          "\n";
      next_bookmark = now + settings_.bookmark_interval;
    }
    if (!send_chunk(fd, lines)) return false;
    if (now >= deadline) return send_all(fd, "0\r\n\r\n");  // the watch ends; the connection stays
    store_.wait_past(sent, std::min(deadline, q.bookmarks ? next_bookmark : deadline), stopping_);
  }
  return false;
}

}  // namespace h2mesh::lab
