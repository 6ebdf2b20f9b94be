#pragma once

// The webhook's HTTPS server: accepts TCP connections, runs the TLS handshake (net::TlsTransport)
// and serves HTTP/1.1 requests on kept-alive connections, one at a time per connection, on the
// main thread's loop. What a request means is the owner's handler; this class owns framing,
// limits and timeouts, and the drain on shutdown.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "net/event_loop.h"
#include "net/tls_context.h"
#include "webhook/http_request.h"

namespace h2mesh::webhook {

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

struct ServerSettings {
  HttpLimits limits;
  Duration handshake_timeout = std::chrono::seconds(10);
  Duration request_timeout = std::chrono::seconds(30);  // first byte of a request to its end
  Duration idle_timeout = std::chrono::seconds(90);     // between requests (the API server's
                                                        // idle connections live 90 s)
  size_t max_connections = 1024;
};

class WebhookServer {
 public:
  // Called on the loop thread for each whole request (any method and path); the reply is sent
  // as soon as it returns.
  using Handler = std::function<HttpReply(const HttpRequest&)>;

  struct Counters {
    uint64_t connections = 0;         // accepted
    uint64_t handshake_failures = 0;  // TLS handshakes that failed or timed out
    uint64_t requests = 0;            // whole requests handed to the handler
    uint64_t rejected = 0;            // requests answered with an error by the framing (413, ...)
    uint64_t timeouts = 0;            // connections closed by the request or idle timeout
    uint64_t refused = 0;             // connections closed at once: max_connections reached
  };

  // Takes ownership of the listening socket. `tls` (not owned) outlives the server.
  WebhookServer(net::EventLoop& loop, int listen_fd, net::TlsContext& tls, ServerSettings settings,
                Handler handler);
  ~WebhookServer();
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;

  // Stops accepting; idle connections close now, a connection in the middle of a request closes
  // after its reply. `done` runs (from the loop) once no connection is left.
  void drain(std::function<void()> done);

  const Counters& counters() const { return counters_; }
  size_t open_connections() const { return connections_.size(); }

 private:
  class Acceptor;
  class Connection;
  void accept_ready();
  void remove(Connection* c);
  void check_drained();

  net::EventLoop& loop_;
  net::TlsContext& tls_;
  const ServerSettings settings_;
  Handler handler_;
  std::unique_ptr<Acceptor> acceptor_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
  std::function<void()> drained_;
  bool draining_ = false;
  Counters counters_;
};

}  // namespace h2mesh::webhook
