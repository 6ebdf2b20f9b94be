#pragma once

// A client connection to the Kubernetes API server on the main thread's event loop:
// non-blocking name lookup (getaddrinfo_a, polled), then a connection over net's transports:
// TLS (net::TlsTransport, the client side the upstream pools use too) with the server
// certificate verified against the cluster's CA (host name or IP address included), or plain TCP
// without a TLS context: an http:// server (kubectl proxy beside the sidecar). OpenSSL is loaded
// the first time a context is made (net/openssl_api.h); a plain connection never loads it.

#include <netdb.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "discovery/k8s_credentials.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "net/tls_context.h"
#include "net/tls_transport.h"
#include "net/transport.h"

namespace h2mesh::discovery::k8s {

using SslCtxPtr = net::SslCtxHandle;

// A client context for `creds` (net::make_client_ssl_ctx): the CA (or the system's store), the
// client certificate. Built before each connection so that a rotated CA or certificate file is
// picked up. Blocking reads of small credential files.
Result<SslCtxPtr> make_tls_context(const Credentials& creds);

class ApiClient final : public net::TransportHandler, public net::Deletable {
 public:
  enum class Failure {
    Resolve,    // the host name did not resolve
    Connect,    // TCP connect failed (refused, unreachable)
    Verify,     // the server certificate was rejected
    Handshake,  // another TLS failure
    Timeout,    // no TLS connection within the timeout
    Closed,     // the peer closed the connection
    Io,         // read/write error after the handshake
  };
  static const char* failure_name(Failure f);

  // Called on the loop thread. After on_closed() nothing else is called; the owner may then
  // release the client through EventLoop::defer_delete (not `delete`: the call may come from
  // inside the client).
  class Visitor {
   public:
    virtual ~Visitor() = default;
    virtual void on_connected() = 0;
    virtual void on_data(std::string_view bytes) = 0;
    virtual void on_closed(Failure failure, const std::string& detail) = 0;
  };

  // `visitor` is not owned and outlives the client (or close() is called first).
  ApiClient(net::EventLoop& loop, Visitor& visitor);
  ~ApiClient() override;
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // Starts the connection. `verify_name` is the name (or IP literal) the certificate must carry;
  // `timeout` bounds lookup + connect + handshake. A null `ctx`: plain TCP, no handshake (and
  // `verify_name` is not used). Outcome: on_connected() or on_closed().
  void connect(SslCtxPtr ctx, const std::string& host, uint16_t port,
               const std::string& verify_name, Duration timeout);
  // Queues bytes; they are written when the socket is writable (never re-enters the visitor).
  void send(std::string_view bytes);
  // Closes at once, without a callback. Idempotent.
  void close();

  void on_transport_connected(const Error* failure) override;
  void on_transport_ready(bool readable, bool writable) override;

 private:
  enum class State { Idle, Resolving, Connecting, Open, Closed };
  struct Lookup;

  void step();
  void poll_lookup();
  void connect_next();
  void opened();
  void do_read();
  void do_write();
  // Shuts the transport down; it is deleted after the loop's iteration (we may be inside it).
  void drop_transport();
  void fail(Failure failure, const std::string& detail);

  net::EventLoop& loop_;
  Visitor& visitor_;
  State state_ = State::Idle;
  SslCtxPtr ctx_;
  std::unique_ptr<net::Transport> transport_;
  net::TlsTransport* tls_ = nullptr;  // transport_ when it is TLS
  uint16_t port_ = 0;
  std::string verify_name_;
  std::vector<config::SocketAddress> addresses_;
  size_t next_address_ = 0;
  std::string last_connect_error_;
  std::unique_ptr<Lookup> lookup_;
  std::string pending_failure_;  // a lookup that failed at once, reported by step()
  net::Timer step_;              // polls the lookup; starts connecting from the loop
  net::Timer timeout_;
  std::string out_;
};

}  // namespace h2mesh::discovery::k8s
