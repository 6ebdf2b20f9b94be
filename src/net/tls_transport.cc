#include "net/tls_transport.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "net/openssl_api.h"
#include "net/socket.h"
#include "net/tls_context.h"

namespace h2mesh::net {
namespace {
// The owner's bytes one write() encrypts at most: their records wait in out_ until the kernel
// takes them, so this bounds the memory a connection whose peer does not read holds beyond the
// socket's buffer (an HTTP/2 connection offers at most ~64 KiB per flush anyway).
constexpr size_t kMaxEncrypt = 128 * 1024;

// What the first queued OpenSSL error of a failed SSL_accept says about whose fault it was.
TlsHandshakeResult classify_failure(unsigned long e) {
  switch (ERR_GET_REASON(e)) {
    case SSL_R_NO_APPLICATION_PROTOCOL:
      return TlsHandshakeResult::NoAlpn;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return TlsHandshakeResult::NoClientCert;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return TlsHandshakeResult::BadClientCert;
    // The client's alert about the certificate we sent (unknown CA, expired, wrong name...).
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      return TlsHandshakeResult::BadCertificate;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return TlsHandshakeResult::Closed;
    default:
      return TlsHandshakeResult::Protocol;
  }
}

// The SANs of a certificate of the given GEN_* type (GEN_URI, GEN_DNS), as text.
void add_names(const GENERAL_NAMES* names, int type, std::vector<std::string>* out) {
  const int n = S().OPENSSL_sk_num(reinterpret_cast<const OPENSSL_STACK*>(names));
  for (int i = 0; i < n; ++i) {
    const auto* name = static_cast<const GENERAL_NAME*>(
        S().OPENSSL_sk_value(reinterpret_cast<const OPENSSL_STACK*>(names), i));
    if (!name || name->type != type) continue;
    const ASN1_STRING* text = type == GEN_URI ? name->d.uniformResourceIdentifier : name->d.dNSName;
    const int len = S().ASN1_STRING_length(text);
    if (len <= 0) continue;
    out->emplace_back(reinterpret_cast<const char*>(S().ASN1_STRING_get0_data(text)),
                      static_cast<size_t>(len));
  }
}

const char* mismatch_kind(const std::string& name) {
  if (name.find("://") != std::string::npos) return "URI mismatch";
  unsigned char buf[16];
  if (inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1)
    return "IP address mismatch";
  return "hostname mismatch";
}
}  // namespace

const char* tls_handshake_result_name(TlsHandshakeResult result) {
  switch (result) {
    case TlsHandshakeResult::Ok:
      return "ok";
    case TlsHandshakeResult::NoAlpn:
      return "no_alpn";
    case TlsHandshakeResult::NoClientCert:
      return "no_client_cert";
    case TlsHandshakeResult::BadClientCert:
      return "bad_client_cert";
    case TlsHandshakeResult::BadCertificate:
      return "bad_certificate";
    case TlsHandshakeResult::Protocol:
      return "protocol";
    case TlsHandshakeResult::Timeout:
      return "timeout";
    case TlsHandshakeResult::Closed:
      return "closed";
  }
  return "protocol";
}

Result<void> TlsTransport::attach_bio(SSL* ssl, TlsTransport* t) {
  // Made once, shared by every thread (OpenSSL only reads it).
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m =
        S().BIO_meth_new(S().BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "h2mesh TLS socket");
    if (m) {
      S().BIO_meth_set_write(m, bio_write);
      S().BIO_meth_set_read(m, bio_read);
      S().BIO_meth_set_ctrl(m, bio_ctrl);
    }
    return m;
  }();
  BIO* bio = method ? S().BIO_new(method) : nullptr;
  if (!bio) return make_error(ErrorCode::Internal, openssl_error_text("cannot create a TLS BIO"));
  S().BIO_set_data(bio, t);
  S().BIO_set_init(bio, 1);
  S().SSL_set_bio(ssl, bio, bio);  // one reference for both directions, freed with the SSL
  return {};
}

int TlsTransport::bio_write(BIO* bio, const char* data, int len) {
  // Never refused: the transport sends out_ itself, once per call into it.
  auto* t = static_cast<TlsTransport*>(S().BIO_get_data(bio));
  if (len <= 0) return 0;
  t->out_.append(data, static_cast<size_t>(len));
  return len;
}

int TlsTransport::bio_read(BIO* bio, char* buf, int len) {
  auto* t = static_cast<TlsTransport*>(S().BIO_get_data(bio));
  S().BIO_clear_flags(bio, BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY);
  if (len <= 0) return 0;
  ++t->socket_reads_;
  const ssize_t n = ::read(t->fd_, buf, static_cast<size_t>(len));
  if (n == 0) t->socket_eof_ = true;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    S().BIO_set_flags(bio, BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY);
  return static_cast<int>(n);
}

long TlsTransport::bio_ctrl(BIO* bio, int cmd, long, void* ptr) {
  auto* t = static_cast<TlsTransport*>(S().BIO_get_data(bio));
  switch (cmd) {
    case BIO_CTRL_FLUSH:  // end of a handshake flight: it leaves with the transport's send
      return 1;
    case BIO_CTRL_EOF:  // how OpenSSL tells a peer that closed from a read that failed
      return t->socket_eof_ ? 1 : 0;
    case BIO_CTRL_WPENDING:
      return static_cast<long>(t->out_.size());
    case BIO_C_GET_FD:
      if (ptr) *static_cast<int*>(ptr) = t->fd_;
      return t->fd_;
    default:
      return 0;
  }
}

Result<std::unique_ptr<TlsTransport>> TlsTransport::make(EventLoop& loop, SSL_CTX* ctx, int fd,
                                                         Duration handshake_timeout,
                                                         TlsHandshakeCounters* counters) {
  S().ERR_clear_error();
  SSL* ssl = S().SSL_new(ctx);
  if (!ssl) {
    std::string why = openssl_error_text("cannot create a TLS session");
    ::close(fd);
    return make_error(ErrorCode::Internal, why);
  }
  std::unique_ptr<TlsTransport> t(new TlsTransport(loop, ssl, fd, handshake_timeout, counters));
  if (auto ok = attach_bio(ssl, t.get()); !ok) return ok.error();  // t frees ssl, closes fd
  return t;
}

Result<std::unique_ptr<TlsTransport>> TlsTransport::accept(EventLoop& loop, SSL_CTX* ctx, int fd,
                                                           Duration handshake_timeout,
                                                           TlsHandshakeCounters* counters) {
  return make(loop, ctx, fd, handshake_timeout, counters);
}

Result<std::unique_ptr<TlsTransport>> TlsTransport::connect(EventLoop& loop, SSL_CTX* ctx, int fd,
                                                            TlsPeerCheck check) {
  auto made = make(loop, ctx, fd, Duration::zero(), nullptr);
  if (!made) return made.error();
  std::unique_ptr<TlsTransport> t = std::move(*made);
  SSL* ssl = t->ssl_;
  // SNI carries names only; the names themselves are checked after the handshake.
  if (!check.sni.empty()) S().SSL_set_tlsext_host_name(ssl, check.sni.c_str());
  if (check.sessions) {
    if (SSL_SESSION* session = check.sessions->get(check.generation))
      S().SSL_set_session(ssl, session);  // takes a reference of its own
  }
  t->client_ = std::make_unique<TlsPeerCheck>(std::move(check));
  t->tcp_connecting_ = true;
  // Where the new-session callback (net/tls_client.cc) finds the slot for the server's tickets.
  S().SSL_set_ex_data(ssl, 0, t->client_.get());
  return t;
}

TlsTransport::TlsTransport(EventLoop& loop, SSL* ssl, int fd, Duration handshake_timeout,
                           TlsHandshakeCounters* counters)
    : loop_(loop),
      ssl_(ssl),
      fd_(fd),
      handshake_timeout_(handshake_timeout),
      handshake_timer_(loop,
                       [this] {
                         handshake_failed(TlsHandshakeResult::Timeout,
                                          "no TLS handshake within the deadline");
                       }),
      counters_(counters) {}

void TlsTransport::count(TlsHandshakeResult result) {
  if (counters_) ++(*counters_)[static_cast<size_t>(result)];
}

void TlsTransport::read_peer_identity() {
  X509* cert = S().SSL_get1_peer_certificate(ssl_);
  if (!cert) return;
  PeerIdentity id;
  // A certificate that reached here passed verification against the CA (a failure ends the
  // handshake); without a CA none is asked for.
  id.verified = S().SSL_get_verify_result(ssl_) == X509_V_OK;
  auto* names = static_cast<GENERAL_NAMES*>(
      S().X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names) {
    add_names(names, GEN_URI, &id.uris);
    add_names(names, GEN_DNS, &id.dns);
    S().GENERAL_NAMES_free(names);
  }
  S().X509_free(cert);
  peer_ = std::move(id);
}

TlsTransport::~TlsTransport() {
  if (client_ && handshaking_ && !tcp_connecting_) count(TlsClientResult::Timeout);
  loop_.cancel_notify(this);
  if (registered_) loop_.remove(fd_);
  S().SSL_free(ssl_);
  ::close(fd_);
}

void TlsTransport::start(TransportHandler& handler) {
  handler_ = &handler;
  // Server side: the client speaks first, the handshake starts when its hello is readable.
  // Client side: writability says the TCP connect finished; then we speak first.
  interest_ = EPOLLIN | EPOLLRDHUP | (tcp_connecting_ ? uint32_t{EPOLLOUT} : 0u);
  loop_.add(fd_, interest_, this);
  registered_ = true;
  if (handshake_timeout_ > Duration::zero()) handshake_timer_.arm(handshake_timeout_);
}

void TlsTransport::update_interest() {
  if (!registered_) return;
  // Writability matters while the TCP connect is under way, while records wait in out_, and
  // while the owner has bytes to write.
  const bool out = tcp_connecting_ || !out_.empty() || (!handshaking_ && want_write_);
  const uint32_t next = EPOLLIN | EPOLLRDHUP | (out ? uint32_t{EPOLLOUT} : 0u);
  if (next == interest_) return;
  interest_ = next;
  loop_.modify(fd_, interest_, this);
}

IoResult::Status TlsTransport::classify(int ret, bool reading) {
  const int err = S().SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:  // (the BIO never refuses a write: out_ takes it)
      if (!reading && err == SSL_ERROR_WANT_READ) write_wants_read_ = true;
      return IoResult::Status::WouldBlock;
    case SSL_ERROR_ZERO_RETURN:
      return IoResult::Status::Eof;
    case SSL_ERROR_SYSCALL:
      if (errno == EINTR) return IoResult::Status::WouldBlock;
      error_ = make_error(ErrorCode::Io, errno ? strerror(errno) : "connection closed");
      return IoResult::Status::Failed;
    default:
      error_ = make_error(ErrorCode::Io, openssl_error_text("TLS error " + std::to_string(err)));
      return IoResult::Status::Failed;
  }
}

void TlsTransport::note_chunk(size_t plain) {
  const size_t fresh = out_.size() - chunked_;
  if (fresh == 0 && plain == 0) return;
  chunks_.push_back(Chunk{fresh, plain});
  chunked_ = out_.size();
}

bool TlsTransport::send_out() {
  if (broken_) return false;
  if (out_.empty()) return true;
  ssize_t n;
  do {
    ++socket_writes_;
    n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    error_ = make_error(ErrorCode::Io, strerror(errno));
    broken_ = true;
    return false;
  }
  size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
  out_.drain(sent);
  chunked_ -= sent;
  // The chunks the kernel took whole: their plaintext is now written as far as the owner knows.
  size_t done = 0;
  for (; done < chunks_.size(); ++done) {
    if (chunks_[done].cipher > sent) {
      chunks_[done].cipher -= sent;
      break;
    }
    sent -= chunks_[done].cipher;
    sent_plain_ += chunks_[done].plain;
  }
  chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(done));
  out_.release_if_empty();
  update_interest();
  return true;
}

bool TlsTransport::encrypt(const uint8_t* data, size_t len) {
  len = std::min(len, kMaxEncrypt);
  S().ERR_clear_error();
  // With SSL_MODE_ENABLE_PARTIAL_WRITE each SSL_write makes one record (at most 16 KiB).
  for (size_t off = 0; off < len;) {
    errno = 0;
    const int n =
        S().SSL_write(ssl_, data + off, static_cast<int>(std::min<size_t>(len - off, INT_MAX)));
    if (n <= 0) {
      note_chunk(0);
      // The same bytes come again with the owner's next write, as OpenSSL's retry rule wants.
      return classify(n, false) == IoResult::Status::WouldBlock;
    }
    write_wants_read_ = false;
    off += static_cast<size_t>(n);
    encrypted_ += static_cast<size_t>(n);
    note_chunk(static_cast<size_t>(n));
  }
  return true;
}

void TlsTransport::handshake() {
  S().ERR_clear_error();
  errno = 0;
  const int ret = client_ ? S().SSL_connect(ssl_) : S().SSL_accept(ssl_);
  const int err = ret == 1 ? SSL_ERROR_NONE : S().SSL_get_error(ssl_, ret);
  const int saved_errno = errno;
  // The flight OpenSSL just made (or the alert of a failure) leaves now, in one send.
  note_chunk(0);
  if (!send_out() && (ret == 1 || err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)) {
    if (client_)
      client_failed(TlsClientResult::Protocol, error_.message);
    else
      handshake_failed(TlsHandshakeResult::Closed, "TLS handshake failed: " + error_.message);
    return;
  }
  errno = saved_errno;
  if (ret == 1 && client_) {
    client_handshake_done();
    return;
  }
  if (ret == 1) {
    handshaking_ = false;
    handshake_timer_.cancel();
    read_peer_identity();
    count(TlsHandshakeResult::Ok);
    update_interest();
    // The client's first request may have come with its last handshake message: have the owner
    // try a read even if epoll has nothing new to say.
    loop_.notify(this, EPOLLIN);
    handler_->on_transport_connected(nullptr);
    return;
  }
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;  // out_ sets EPOLLOUT
  if (client_) {
    const long verify = S().SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      S().ERR_clear_error();
      client_failed(TlsClientResult::VerifyFailed, std::string("certificate verify failed (") +
                                                       S().X509_verify_cert_error_string(verify) +
                                                       ")");
      return;
    }
  }
  std::string why;
  if (client_) {
    if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
      if (S().ERR_peek_error() != 0)
        why = openssl_error_text("TLS error");
      else
        why = errno ? strerror(errno) : "the server closed the connection";
    } else {
      why = openssl_error_text("TLS error " + std::to_string(err));
    }
    client_failed(TlsClientResult::Protocol, why);
    return;
  }
  TlsHandshakeResult result = TlsHandshakeResult::Closed;
  if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
    why = errno ? strerror(errno) : "the client closed the connection";
  } else {
    result = classify_failure(S().ERR_peek_error());
    why = openssl_error_text("TLS error " + std::to_string(err));
    if (result == TlsHandshakeResult::BadClientCert) {
      why += std::string(" (") +
             S().X509_verify_cert_error_string(S().SSL_get_verify_result(ssl_)) + ")";
    }
  }
  handshake_failed(result, "TLS handshake failed: " + why);
}

void TlsTransport::client_handshake_done() {
  // The chain verified during the handshake (SSL_VERIFY_PEER); now the names and the protocol.
  if (!client_->names.empty()) {
    X509* cert = S().SSL_get1_peer_certificate(ssl_);
    std::string why = "the server sent no certificate";
    const bool ok = cert && check_peer_names(cert, client_->names, &why);
    if (cert) S().X509_free(cert);
    if (!ok) {
      // OpenSSL's words for its own name checks, then what was expected and found.
      client_failed(TlsClientResult::SanMismatch, std::string("certificate verify failed (") +
                                                      mismatch_kind(client_->names.front()) +
                                                      "): " + why);
      return;
    }
  }
  if (!client_->alpn.empty() && alpn() != client_->alpn) {
    const std::string got = alpn();
    client_failed(TlsClientResult::NoAlpn,
                  "the server did not select ALPN " + client_->alpn +
                      (got.empty() ? " (it selected none)" : " (it selected " + got + ")"));
    return;
  }
  count(resumed() ? TlsClientResult::Resumed : TlsClientResult::Ok);
  read_peer_identity();  // the server's SANs, for owners that check more than `names` (the mesh)
  handshaking_ = false;
  update_interest();
  // The server's first bytes (SETTINGS, a session ticket) may have come with its last
  // handshake message and sit in OpenSSL's buffer: have the owner try a read.
  loop_.notify(this, EPOLLIN);
  handler_->on_transport_connected(nullptr);
}

void TlsTransport::client_failed(TlsClientResult result, const std::string& why) {
  count(result);
  handshaking_ = false;
  detail_ = why;
  // A connection to a server we do not trust ends here; the owner treats it as a failed connect.
  error_ = make_error(ErrorCode::ConnectFailed, "TLS handshake failed: " + why);
  if (registered_) {
    registered_ = false;
    loop_.remove(fd_);
  }
  handler_->on_transport_connected(&error_);
}

void TlsTransport::count(TlsClientResult result) {
  if (result_ || !client_) return;
  result_ = result;
  if (client_->counters) (*client_->counters)[static_cast<size_t>(result)]++;
}

void TlsTransport::handshake_failed(TlsHandshakeResult result, const std::string& why) {
  count(result);
  handshaking_ = false;
  handshake_timer_.cancel();
  error_ = make_error(ErrorCode::DownstreamProtocol, why);
  // Nothing more from this peer: stop hearing about the socket before the owner does.
  if (registered_) {
    registered_ = false;
    loop_.remove(fd_);
  }
  handler_->on_transport_connected(&error_);
}

void TlsTransport::on_io(uint32_t events) {
  if (tcp_connecting_) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    tcp_connecting_ = false;
    if (int err = socket_error(fd_); err != 0) {
      handshaking_ = false;
      error_ = make_error(ErrorCode::ConnectFailed, strerror(err));
      registered_ = false;
      loop_.remove(fd_);
      handler_->on_transport_connected(&error_);
      return;
    }
    update_interest();
  }
  const bool had_out = !out_.empty();
  if ((events & EPOLLOUT) && had_out && !send_out() && !handshaking_) {
    handler_->on_transport_ready(true, false);  // the owner's next read says Failed
    return;
  }
  if (handshaking_) {
    handshake();  // also after a failed send: it reports the failure
    return;
  }
  const bool readable = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  // Writable for the owner once the records that waited are gone (or some of its bytes got
  // out: its next write reports them).
  bool writable = false;
  if (want_write_ && (events & EPOLLOUT) && (out_.empty() || sent_plain_ > 0)) writable = true;
  if (want_write_ && write_wants_read_ && (events & EPOLLIN)) writable = true;
  if (readable || writable) handler_->on_transport_ready(readable, writable);
}

IoResult TlsTransport::read(uint8_t* buf, size_t len) {
  if (deferred_) {
    const IoResult::Status end = *deferred_;
    deferred_.reset();
    return {end};
  }
  if (broken_) return {IoResult::Status::Failed};
  S().ERR_clear_error();
  size_t got = 0;
  IoResult::Status end = IoResult::Status::Done;
  // One SSL_read hands over one record; read-ahead has usually buffered several. Take them all
  // (as far as `len`), so that the owner handles them in this loop iteration and answers them
  // with one write, as it does over TCP.
  while (got < len) {
    errno = 0;
    const int n =
        S().SSL_read(ssl_, buf + got, static_cast<int>(std::min<size_t>(len - got, INT_MAX)));
    if (n <= 0) {
      end = classify(n, true);
      break;
    }
    got += static_cast<size_t>(n);
    // Nothing buffered: another SSL_read would only cost a read(2) that epoll answers for free.
    if (!S().SSL_has_pending(ssl_)) break;
  }
  // What OpenSSL wrote while reading (an answer to the peer's key update) leaves now.
  if (out_.size() != chunked_) {
    note_chunk(0);
    if (!send_out() && end != IoResult::Status::Failed) end = IoResult::Status::Failed;
  }
  if (got == 0) return {end};
  if (end == IoResult::Status::Eof || end == IoResult::Status::Failed) {
    deferred_ = end;  // after the bytes: the owner's next read
    loop_.notify(this, EPOLLIN);
  } else if (got == len && S().SSL_has_pending(ssl_)) {
    // Records OpenSSL holds are invisible to epoll: report them. (A WouldBlock above left part
    // of a record, whose rest epoll reports when it comes.)
    loop_.notify(this, EPOLLIN);
  }
  return {IoResult::Status::Done, got};
}

IoResult TlsTransport::write(const uint8_t* data, size_t len) {
  // `data` starts with the encrypted_ bytes encrypted before (the owner offers what it was not
  // told written, again); only what follows them is new.
  if (!send_out()) return {IoResult::Status::Failed};
  if (out_.empty() && len > encrypted_) {
    if (!encrypt(data + encrypted_, len - encrypted_) || !send_out())
      return {IoResult::Status::Failed};
  }
  const size_t done = sent_plain_;
  sent_plain_ = 0;
  encrypted_ -= done;
  if (done == 0) return {IoResult::Status::WouldBlock};
  return {IoResult::Status::Done, done};
}

void TlsTransport::want_write(bool on) {
  if (on == want_write_) return;
  want_write_ = on;
  if (!handshaking_) update_interest();
}

void TlsTransport::shutdown() {
  if (client_ && handshaking_ && !tcp_connecting_) count(TlsClientResult::Timeout);
  if (!registered_) return;
  registered_ = false;
  handshake_timer_.cancel();
  loop_.cancel_notify(this);
  loop_.remove(fd_);
  // One try at close_notify (after any records still waiting); the socket closes whether or
  // not it fit.
  if (!handshaking_ && !broken_) {
    S().ERR_clear_error();
    S().SSL_shutdown(ssl_);
    S().ERR_clear_error();
    note_chunk(0);
    send_out();
  }
  ::shutdown(fd_, SHUT_RDWR);
}

bool TlsTransport::resumed() const { return S().SSL_session_reused(ssl_) == 1; }

std::string TlsTransport::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  S().SSL_get0_alpn_selected(ssl_, &p, &n);
  return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

}  // namespace h2mesh::net
