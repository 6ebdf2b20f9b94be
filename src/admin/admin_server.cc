#include "admin/admin_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace h2mesh::admin {
namespace {
constexpr size_t kMaxRequest = 8192;

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}
}  // namespace

class AdminServer::Acceptor final : public net::IoHandler {
 public:
  Acceptor(AdminServer& server, int fd) : server_(server), fd_(fd) {
    server_.loop_.add(fd_, EPOLLIN, this);
  }
  ~Acceptor() override {
    server_.loop_.remove(fd_);
    ::close(fd_);
  }
  void on_io(uint32_t) override;

 private:
  AdminServer& server_;
  int fd_;
};

class AdminServer::Connection final : public net::IoHandler, public net::Deletable {
 public:
  Connection(AdminServer& server, int fd)
      : server_(server), fd_(fd), alive_(std::make_shared<bool>(true)) {
    server_.loop_.add(fd_, EPOLLIN | EPOLLRDHUP, this);
  }
  ~Connection() override {
    *alive_ = false;
    server_.loop_.remove(fd_);
    ::close(fd_);
  }

  void on_io(uint32_t events) override {
    if (done_) return;
    if (events & EPOLLOUT) {
      write_some();
      return;
    }
    char buf[2048];
    ssize_t n = ::read(fd_, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      finish();
      return;
    }
    if (n < 0 || answered_) return;
    request_.append(buf, static_cast<size_t>(n));
    if (request_.size() > kMaxRequest) {
      respond(HttpResponse{400, "text/plain", "request too large\n"});
      return;
    }
    if (request_.find("\r\n\r\n") == std::string::npos) return;
    answered_ = true;
    size_t sp1 = request_.find(' ');
    size_t sp2 = sp1 == std::string::npos ? sp1 : request_.find(' ', sp1 + 1);
    if (sp2 == std::string::npos) {
      respond(HttpResponse{400, "text/plain", "bad request line\n"});
      return;
    }
    std::string method = request_.substr(0, sp1);
    std::string path = request_.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string query;
    if (size_t q = path.find('?'); q != std::string::npos) {
      query = path.substr(q + 1);
      path.resize(q);
    }
    std::weak_ptr<bool> alive = alive_;
    Connection* self = this;
    server_.handler_(method, path, query, [alive, self](HttpResponse r) {
      if (auto a = alive.lock(); a && *a) self->respond(std::move(r));
    });
  }

 private:
  void respond(HttpResponse r) {
    answered_ = true;
    out_ = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) +
           "\r\nContent-Type: " + r.content_type +
           "\r\nContent-Length: " + std::to_string(r.body.size()) +
           "\r\nConnection: close\r\n\r\n" + r.body;
    write_some();
  }
  void write_some() {
    while (!out_.empty()) {
      ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          server_.loop_.modify(fd_, EPOLLOUT, this);
          return;
        }
        break;
      }
      out_.erase(0, static_cast<size_t>(n));
    }
    finish();
  }
  void finish() {
    done_ = true;
    server_.remove(this);
  }

  AdminServer& server_;
  int fd_;
  std::shared_ptr<bool> alive_;
  std::string request_;
  std::string out_;
  bool answered_ = false;
  bool done_ = false;
};

void AdminServer::Acceptor::on_io(uint32_t) {
  for (int i = 0; i < 16; ++i) {
    int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    auto c = std::make_unique<Connection>(server_, fd);
    server_.connections_.emplace(c.get(), std::move(c));
  }
}

AdminServer::AdminServer(net::EventLoop& loop, int listen_fd, Handler handler)
    : loop_(loop), handler_(std::move(handler)) {
  acceptor_ = std::make_unique<Acceptor>(*this, listen_fd);
}

AdminServer::~AdminServer() {
  acceptor_.reset();
  connections_.clear();
}

void AdminServer::remove(Connection* c) {
  auto it = connections_.find(c);
  if (it == connections_.end()) return;
  loop_.defer_delete(std::move(it->second));
  connections_.erase(it);
}

}  // namespace h2mesh::admin
