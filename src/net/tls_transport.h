#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <optional>
#include <memory>
#include <optional>
#include <string>

#include "net/event_loop.h"
#include "net/tls_client.h"
#include "net/transport.h"

namespace h2mesh::net {

// How a server-side handshake ended, for h2mesh_tls_handshakes_total{result}.
enum class TlsHandshakeResult : uint8_t {
  Ok,
  NoAlpn,          // the client offered ALPN without any protocol we serve
  NoClientCert,    // a client certificate is required and none came
  BadClientCert,   // the client's certificate did not verify against the CA
  BadCertificate,  // the client refused our certificate (its alert said so)
  Protocol,        // anything else the peer got wrong (not TLS, bad version, bad messages)
  Timeout,         // no complete handshake within the deadline
  Closed,          // the client went away during the handshake
};
constexpr size_t kTlsHandshakeResults = 8;
using TlsHandshakeCounters = std::array<uint64_t, kTlsHandshakeResults>;
// "ok", "no_alpn", ... as the metric's label.
const char* tls_handshake_result_name(TlsHandshakeResult result);

// A TLS connection over a non-blocking TCP socket, registered on the loop's epoll: the server
// side of an accepted socket (accept) or the client side of a socket still connecting
// (connect). The handshake runs on the loop as bytes arrive; its end (success or failure) is
// reported once as on_transport_connected, so connecting() is true until then. After that it
// moves bytes like TcpTransport, and hides from the owner that TLS may need to write to read (or
// the other way round).
//
// The client side verifies the chain during the handshake and then the names and the ALPN
// protocol of TlsPeerCheck, before it reports the connection ready (nothing of the caller's is
// sent to a server that fails them). Its deadline is the owner's (the pool's connect_timeout
// covers TCP connect, handshake and the HTTP/2 SETTINGS); a transport shut down before its
// handshake finished counts as a `timeout`.
class TlsTransport final : public Transport, private IoHandler {
 public:
  // Takes ownership of `fd`. `ctx` comes from TlsContext::current(); the connection takes a
  // reference of its own. An error (no memory for the session) closes `fd`. `counters` (may be
  // null; must outlive the transport) get one count when the handshake ends, by result.
  static Result<std::unique_ptr<TlsTransport>> accept(EventLoop& loop, SSL_CTX* ctx, int fd,
                                                      Duration handshake_timeout,
                                                      TlsHandshakeCounters* counters = nullptr);
  // Takes ownership of `fd`, whose non-blocking connect is under way. `ctx` comes from
  // TlsClientContext::current() (or make_client_ssl_ctx). An error closes `fd`.
  static Result<std::unique_ptr<TlsTransport>> connect(EventLoop& loop, SSL_CTX* ctx, int fd,
                                                       TlsPeerCheck check);
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  void start(TransportHandler& handler) override;
  bool connecting() const override { return handshaking_; }
  IoResult read(uint8_t* buf, size_t len) override;
  IoResult write(const uint8_t* data, size_t len) override;
  void want_write(bool on) override;
  void shutdown() override;
  Error last_error() const override { return error_; }
  const PeerIdentity* peer_identity() const override { return peer_ ? &*peer_ : nullptr; }

  // The protocol ALPN chose ("" when none); known once connected.
  std::string alpn() const;
  // Client side, once connected: whether the server accepted the session we offered.
  bool resumed() const;
  // Client side: how the handshake ended, once it did (a TCP connect that failed has none).
  std::optional<TlsClientResult> handshake_result() const { return result_; }
  // Client side: why the handshake failed, without the "TLS handshake failed: " of last_error().
  const std::string& handshake_detail() const { return detail_; }
  // Client side: the TCP connect finished and the handshake is under way (or done).
  bool tcp_connected() const { return !tcp_connecting_; }

 private:
  TlsTransport(EventLoop& loop, SSL* ssl, int fd, Duration handshake_timeout,
               TlsHandshakeCounters* counters);
  void on_io(uint32_t events) override;
  void handshake();
  void handshake_failed(TlsHandshakeResult result, const std::string& why);
  void count(TlsHandshakeResult result);
  void read_peer_identity();
  void client_handshake_done();
  void client_failed(TlsClientResult result, const std::string& why);
  void count(TlsClientResult result);
  void update_interest();
  // The error of an SSL call that returned `ret`: WouldBlock (noting what it waits for), Eof,
  // or Failed with error_ set.
  IoResult::Status classify(int ret, bool reading);

  EventLoop& loop_;
  SSL* ssl_;
  int fd_;
  Duration handshake_timeout_;
  Timer handshake_timer_;
  TransportHandler* handler_ = nullptr;
  TlsHandshakeCounters* counters_;
  std::optional<PeerIdentity> peer_;
  Error error_;
  uint32_t interest_ = 0;
  bool handshaking_ = true;
  bool handshake_wants_write_ = false;
  bool want_write_ = false;
  bool read_wants_write_ = false;  // SSL_read needs the socket writable first
  bool write_wants_read_ = false;  // SSL_write needs bytes from the peer first
  bool registered_ = false;
  // Client side only (null on the server side).
  std::unique_ptr<TlsPeerCheck> client_;
  bool tcp_connecting_ = false;
  std::optional<TlsClientResult> result_;  // set once: the handshake's end
  std::string detail_;
};

}  // namespace h2mesh::net
