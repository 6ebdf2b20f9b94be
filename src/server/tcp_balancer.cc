#include "server/tcp_balancer.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <unordered_map>

#include "common/buffer.h"
#include "net/socket.h"

namespace h2mesh::server {

// One client connection spliced to one backend connection.
class TcpBalancer::Pipe final : public net::Deletable {
 public:
  Pipe(net::EventLoop& loop, int client, int backend)
      : loop_(loop), a_(*this, client), b_(*this, backend) {
    a_.peer = &b_;
    b_.peer = &a_;
    loop_.add(client, EPOLLIN, &a_);
    loop_.add(backend, EPOLLIN | EPOLLOUT, &b_);
  }
  ~Pipe() override {
    for (Side* s : {&a_, &b_}) {
      loop_.remove(s->fd);
      ::close(s->fd);
    }
  }
  std::function<void(Pipe*)> on_done;

 private:
  struct Side final : net::IoHandler {
    Side(Pipe& p, int f) : pipe(p), fd(f) {}
    void on_io(uint32_t events) override { pipe.handle(*this, events); }
    Pipe& pipe;
    int fd;
    Side* peer = nullptr;
    Buffer pending;  // bytes read from the peer, waiting to be written to this side
  };

  void handle(Side& s, uint32_t events) {
    if (done_) return;
    if (events & EPOLLOUT) {
      if (!flush(s)) return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      uint8_t buf[16384];
      ssize_t n = ::read(s.fd, buf, sizeof(buf));
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        finish();
        return;
      }
      if (n > 0) {
        s.peer->pending.append(buf, static_cast<size_t>(n));
        flush(*s.peer);
      }
    }
  }
  bool flush(Side& s) {
    while (!s.pending.empty()) {
      ssize_t n = ::send(s.fd, s.pending.data(), s.pending.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) break;
        finish();
        return false;
      }
      s.pending.drain(static_cast<size_t>(n));
    }
    // Back-pressure: stop reading the other side while this one is full.
    loop_.modify(s.fd, EPOLLIN | (s.pending.empty() ? 0u : uint32_t{EPOLLOUT}), &s);
    loop_.modify(s.peer->fd, s.pending.empty() ? uint32_t{EPOLLIN} : 0u, s.peer);
    return true;
  }
  void finish() {
    done_ = true;
    if (on_done) on_done(this);
  }

  net::EventLoop& loop_;
  Side a_, b_;
  bool done_ = false;
};

class TcpBalancer::Acceptor final : public net::IoHandler {
 public:
  Acceptor(TcpBalancer& owner, int fd) : owner_(owner), fd_(fd) {
    owner_.loop_.add(fd_, EPOLLIN, this);
  }
  ~Acceptor() override {
    owner_.loop_.remove(fd_);
    ::close(fd_);
    pipes_.clear();
  }
  void on_io(uint32_t) override {
    int client = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) return;
    const auto& backend = owner_.backends_[next_++ % owner_.backends_.size()];
    auto fd = net::connect_tcp(backend);
    if (!fd) {
      ::close(client);
      return;
    }
    auto pipe = std::make_unique<Pipe>(owner_.loop_, client, *fd);
    pipe->on_done = [this](Pipe* p) {
      auto it = pipes_.find(p);
      if (it == pipes_.end()) return;
      owner_.loop_.defer_delete(std::move(it->second));
      pipes_.erase(it);
    };
    pipes_.emplace(pipe.get(), std::move(pipe));
  }

 private:
  TcpBalancer& owner_;
  int fd_;
  size_t next_ = 0;
  std::unordered_map<Pipe*, std::unique_ptr<Pipe>> pipes_;
};

TcpBalancer::TcpBalancer(std::vector<config::SocketAddress> backends)
    : backends_(std::move(backends)) {}

TcpBalancer::~TcpBalancer() {
  if (thread_.joinable()) {
    loop_.stop();
    thread_.join();
  }
  acceptor_.reset();
  loop_.run_deferred();
}

Result<uint16_t> TcpBalancer::start() {
  auto fd = net::listen_tcp(config::SocketAddress{"127.0.0.1", 0}, false);
  if (!fd) return fd.error();
  uint16_t port = net::local_port(*fd);
  acceptor_ = std::make_unique<Acceptor>(*this, *fd);
  thread_ = std::thread([this] { loop_.run(); });
  return port;
}

}  // namespace h2mesh::server
