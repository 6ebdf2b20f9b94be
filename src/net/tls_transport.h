#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/buffer.h"
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
//
// System calls: OpenSSL reads ahead, so one read(2) takes every record the socket holds, and
// read() hands over all the records it buffered (up to `len`) in one call. OpenSSL's records go
// to a buffer of this transport, not to the socket: the records of one write() (one per 16 KiB),
// and whatever OpenSSL writes on its own (handshake, tickets, close_notify), leave in one
// send(2). write() reports as written only what the kernel took, like TcpTransport; the records
// the kernel did not take yet wait here, and the owner offers the same bytes again (as it does
// after a short write anyway), which are not encrypted twice.
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

  // System calls on the socket so far (for tests): read(2) calls (EAGAIN included), send(2) calls.
  uint64_t socket_reads() const { return socket_reads_; }
  uint64_t socket_writes() const { return socket_writes_; }

 private:
  TlsTransport(EventLoop& loop, SSL* ssl, int fd, Duration handshake_timeout,
               TlsHandshakeCounters* counters);
  // What accept and connect share: the session on its BIO. An error closes `fd`.
  static Result<std::unique_ptr<TlsTransport>> make(EventLoop& loop, SSL_CTX* ctx, int fd,
                                                    Duration handshake_timeout,
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
  // Encrypts `data` (plaintext the owner has not offered before) record by record into out_,
  // as far as kMaxEncrypt. False (error_ set) when OpenSSL failed.
  bool encrypt(const uint8_t* data, size_t len);
  // One send(2) of out_, when it holds anything. False (error_ set, broken_) when the socket
  // failed.
  bool send_out();
  // The chunk bookkeeping of the bytes OpenSSL wrote since the last call: `plain` bytes of the
  // owner's (0 for OpenSSL's own messages).
  void note_chunk(size_t plain);

  // The socket BIO (both sides): reads from fd_, writes append to out_.
  static int bio_write(BIO* bio, const char* data, int len);
  static int bio_read(BIO* bio, char* buf, int len);
  static long bio_ctrl(BIO* bio, int cmd, long num, void* ptr);
  static Result<void> attach_bio(SSL* ssl, TlsTransport* t);

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
  // Records made but not yet taken by the kernel, in order; each chunk is what one SSL call
  // wrote, with how many of the owner's bytes it carries.
  struct Chunk {
    size_t cipher;
    size_t plain;
  };
  Buffer out_;
  std::vector<Chunk> chunks_;
  size_t chunked_ = 0;     // bytes of out_ already in chunks_ (the rest: OpenSSL's latest)
  size_t encrypted_ = 0;   // the owner's bytes encrypted but not yet reported written
  size_t sent_plain_ = 0;  // of those, the ones whose records the kernel took
  // An end (Eof or Failed) read() met after bytes it returned: said by the next read().
  std::optional<IoResult::Status> deferred_;
  uint64_t socket_reads_ = 0;
  uint64_t socket_writes_ = 0;
  bool handshaking_ = true;
  bool want_write_ = false;
  bool write_wants_read_ = false;  // SSL_write needs bytes from the peer first
  bool broken_ = false;            // a send failed: error_ says why; every call fails from now
  bool socket_eof_ = false;        // read(2) returned 0 (BIO_eof)
  bool registered_ = false;
  // Client side only (null on the server side).
  std::unique_ptr<TlsPeerCheck> client_;
  bool tcp_connecting_ = false;
  std::optional<TlsClientResult> result_;  // set once: the handshake's end
  std::string detail_;
};

}  // namespace h2mesh::net
