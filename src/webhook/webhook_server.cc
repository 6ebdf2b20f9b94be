#include "webhook/webhook_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"
#include "net/socket.h"
#include "net/tls_transport.h"

namespace h2mesh::webhook {
namespace {
constexpr size_t kReadChunk = 16 * 1024;
constexpr int kReadsPerEvent = 64;  // then the loop serves others; epoll reports the rest
constexpr int kAcceptsPerEvent = 64;
// A client that sends requests without reading the replies is cut off past this much output.
constexpr size_t kMaxPendingOutput = 8 * 1024 * 1024;
}  // namespace

class WebhookServer::Acceptor final : public net::IoHandler {
 public:
  Acceptor(WebhookServer& server, int fd) : server_(server), fd_(fd) {
    server_.loop_.add(fd_, EPOLLIN, this);
  }
  ~Acceptor() override {
    server_.loop_.remove(fd_);
    ::close(fd_);
  }
  int fd() const { return fd_; }
  void on_io(uint32_t) override { server_.accept_ready(); }

 private:
  WebhookServer& server_;
  int fd_;
};

// One client connection: TLS, then requests one after the other. Owned by the server's map;
// deleted at the end of a loop iteration once closed.
class WebhookServer::Connection final : public net::TransportHandler, public net::Deletable {
 public:
  Connection(WebhookServer& server, std::unique_ptr<net::Transport> transport)
      : server_(server),
        transport_(std::move(transport)),
        parser_(server.settings_.limits),
        timer_(server.loop_, [this] { on_timeout(); }) {}

  void start() { transport_->start(*this); }  // the transport bounds the handshake

  // Closes now when between requests, else after the reply to the request in progress.
  void drain() {
    if (!handshaken_ || (!parser_.in_progress() && out_.empty())) {
      close();
      return;
    }
    close_after_reply_ = true;
  }

  void on_transport_connected(const Error* failure) override {
    if (failure) {
      ++server_.counters_.handshake_failures;
      LOG_DEBUG("webhook: %s", failure->message.c_str());
      close();
      return;
    }
    handshaken_ = true;
    timer_.arm(server_.settings_.idle_timeout);
  }

  void on_transport_ready(bool readable, bool writable) override {
    if (closed_) return;
    if (writable) flush();
    if (readable && !closed_) read_some();
  }

 private:
  void read_some() {
    uint8_t buf[kReadChunk];
    for (int i = 0; i < kReadsPerEvent && !closed_; ++i) {
      net::IoResult r = transport_->read(buf, sizeof(buf));
      if (r.status == net::IoResult::Status::WouldBlock) return;
      if (r.status != net::IoResult::Status::Done) {
        close();  // the client closed, or the connection broke: nothing is waiting for a reply
        return;
      }
      // Once a reply that ends the connection is queued, what else comes is read and dropped
      // (left unread, epoll would report it over and over until the reply is out).
      if (closing_) continue;
      consume(std::string_view(reinterpret_cast<const char*>(buf), r.bytes));
    }
  }

  void consume(std::string_view data) {
    while (!closing_) {
      size_t used = 0;
      HttpRequestParser::State state = parser_.feed(data, &used);
      data.remove_prefix(used);
      if (state == HttpRequestParser::State::NeedMore) {
        if (parser_.in_progress() && !request_timer_) {
          request_timer_ = true;
          timer_.arm(server_.settings_.request_timeout);
        }
        return;
      }
      if (state == HttpRequestParser::State::Failed) {
        ++server_.counters_.rejected;
        LOG_DEBUG("webhook: bad request: %s", parser_.error().c_str());
        send(parser_.error_status(), "text/plain; charset=utf-8", parser_.error() + "\n", true);
        return;
      }
      ++server_.counters_.requests;
      const HttpRequest& request = parser_.request();
      HttpReply reply = server_.handler_(request);
      const bool close = !request.keep_alive || close_after_reply_ || server_.draining_;
      send(reply.status, reply.content_type, reply.body, close);
      parser_.next();
      request_timer_ = false;
      if (!closing_) timer_.arm(server_.settings_.idle_timeout);
    }
  }

  void send(int status, std::string_view content_type, std::string_view body, bool close) {
    out_ += format_response(status, content_type, body, close);
    if (close) closing_ = true;
    if (out_.size() > kMaxPendingOutput) {
      LOG_DEBUG("webhook: a client does not read its replies; closing");
      this->close();
      return;
    }
    flush();
  }

  void flush() {
    while (!out_.empty() && !closed_) {
      net::IoResult r =
          transport_->write(reinterpret_cast<const uint8_t*>(out_.data()), out_.size());
      if (r.status == net::IoResult::Status::WouldBlock) {
        transport_->want_write(true);
        return;
      }
      if (r.status != net::IoResult::Status::Done) {
        close();
        return;
      }
      out_.erase(0, r.bytes);
    }
    if (closed_) return;
    transport_->want_write(false);
    if (closing_) close();
  }

  void on_timeout() {
    ++server_.counters_.timeouts;
    if (request_timer_) {
      // Half a request for too long: say so (the client may be waiting for it) and close.
      send(408, "text/plain; charset=utf-8", "the request took too long to arrive\n", true);
      if (!closed_ && out_.empty()) close();
      return;
    }
    close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    transport_->shutdown();
    server_.remove(this);
  }

  WebhookServer& server_;
  std::unique_ptr<net::Transport> transport_;
  HttpRequestParser parser_;
  net::Timer timer_;  // idle (between requests) or request (from its first byte)
  std::string out_;
  bool handshaken_ = false;
  bool request_timer_ = false;
  bool close_after_reply_ = false;  // draining: close once the request in progress is answered
  bool closing_ = false;            // a reply that ends the connection is queued
  bool closed_ = false;
};

WebhookServer::WebhookServer(net::EventLoop& loop, int listen_fd, net::TlsContext& tls,
                             ServerSettings settings, Handler handler)
    : loop_(loop),
      tls_(tls),
      settings_(settings),
      handler_(std::move(handler)),
      acceptor_(std::make_unique<Acceptor>(*this, listen_fd)) {}

WebhookServer::~WebhookServer() = default;

void WebhookServer::accept_ready() {
  for (int i = 0; i < kAcceptsPerEvent && acceptor_; ++i) {
    int fd = ::accept4(acceptor_->fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        LOG_WARN("webhook: accept: %s", strerror(errno));
      return;
    }
    ++counters_.connections;
    if (connections_.size() >= settings_.max_connections) {
      ++counters_.refused;
      ::close(fd);
      continue;
    }
    net::set_nodelay(fd);
    // The certificate files are looked at here, at most once per second: a rotated certificate
    // is presented from the next connection on.
    auto transport = net::TlsTransport::accept(loop_, tls_.current(loop_.now()), fd,
                                               settings_.handshake_timeout);
    if (!transport) {
      LOG_WARN("webhook: %s", transport.error().message.c_str());
      continue;
    }
    auto c = std::make_unique<Connection>(*this, std::move(*transport));
    Connection* raw = c.get();
    connections_.emplace(raw, std::move(c));
    raw->start();
  }
}

void WebhookServer::remove(Connection* c) {
  auto it = connections_.find(c);
  if (it == connections_.end()) return;
  // The connection may be inside one of its own callbacks: delete it after this iteration.
  loop_.defer_delete(std::move(it->second));
  connections_.erase(it);
  check_drained();
}

void WebhookServer::drain(std::function<void()> done) {
  draining_ = true;
  drained_ = std::move(done);
  acceptor_.reset();  // closes the listening socket: new connections are refused
  std::vector<Connection*> open;
  for (auto& [c, owned] : connections_) open.push_back(c);
  for (Connection* c : open) c->drain();
  check_drained();
}

void WebhookServer::check_drained() {
  if (!draining_ || !connections_.empty() || !drained_) return;
  loop_.defer(std::move(drained_));
  drained_ = nullptr;
}

}  // namespace h2mesh::webhook
