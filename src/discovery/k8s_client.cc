#include "discovery/k8s_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>

#include "net/openssl_api.h"

namespace h2mesh::discovery::k8s {
namespace {

// The OpenSSL functions (loaded on first use, net/openssl_api.h). make_tls_context loads
// them or fails; everything else runs with a context it made.
using net::OpenSsl;
using net::openssl;
const OpenSsl& S() { return *openssl(nullptr); }

Error tls_error(std::string message) {
  return make_error(ErrorCode::InvalidArgument, std::move(message));
}

// The oldest queued OpenSSL error, or `fallback`; clears the queue.
std::string openssl_error(const std::string& fallback) {
  unsigned long e = S().ERR_get_error();
  S().ERR_clear_error();
  if (e == 0) return fallback;
  char buf[256];
  S().ERR_error_string_n(e, buf, sizeof(buf));
  const char* reason = S().ERR_reason_error_string(e);
  return reason ? reason : buf;
}

struct BioFree {
  void operator()(BIO* b) const { S().BIO_free(b); }
};

Result<std::string> pem_text(const PemSource& src, const char* what) {
  if (!src.data.empty()) return src.data;
  auto text = read_small_file(src.path);
  if (!text)
    return make_error(ErrorCode::Io,
                      std::string("cannot read the ") + what + " " + text.error().message);
  return text;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

Result<void> load_ca(SSL_CTX* ctx, const PemSource& ca) {
  auto pem = pem_text(ca, "CA certificate");
  if (!pem) return pem.error();
  std::unique_ptr<BIO, BioFree> bio(S().BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  X509_STORE* store = S().SSL_CTX_get_cert_store(ctx);
  int count = 0;
  while (X509* cert = S().PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    S().X509_STORE_add_cert(store, cert);  // takes a reference of its own
    S().X509_free(cert);
    ++count;
  }
  S().ERR_clear_error();  // the loop ends with a "no start line" error
  if (count == 0)
    return tls_error("no PEM certificate in the CA " + (ca.path.empty() ? "data" : ca.path));
  return {};
}

Result<void> load_client_certificate(SSL_CTX* ctx, const Credentials& c) {
  auto cert_pem = pem_text(c.client_cert, "client certificate");
  if (!cert_pem) return cert_pem.error();
  auto key_pem = pem_text(c.client_key, "client key");
  if (!key_pem) return key_pem.error();
  std::unique_ptr<BIO, BioFree> bio(
      S().BIO_new_mem_buf(cert_pem->data(), static_cast<int>(cert_pem->size())));
  X509* leaf = S().PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (!leaf || S().SSL_CTX_use_certificate(ctx, leaf) != 1) {
    S().X509_free(leaf);
    return tls_error("bad client certificate: " + openssl_error("no PEM certificate"));
  }
  S().X509_free(leaf);
  while (X509* extra = S().PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    S().SSL_CTX_add_extra_chain_cert(ctx, extra);  // takes ownership
  S().ERR_clear_error();
  std::unique_ptr<BIO, BioFree> kbio(
      S().BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  EVP_PKEY* key = S().PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr);
  bool ok = key && S().SSL_CTX_use_PrivateKey(ctx, key) == 1 && S().SSL_CTX_check_private_key(ctx) == 1;
  S().EVP_PKEY_free(key);
  if (!ok) return tls_error("bad client key: " + openssl_error("no PEM private key"));
  return {};
}

}  // namespace

void SslCtxFree::operator()(SSL_CTX* ctx) const { S().SSL_CTX_free(ctx); }

Result<SslCtxPtr> make_tls_context(const Credentials& c) {
  std::string why;
  if (!openssl(&why)) return tls_error(why);
  SslCtxPtr ctx(S().SSL_CTX_new(S().TLS_client_method()));
  if (!ctx) return tls_error("cannot create a TLS context: " + openssl_error("unknown error"));
  S().SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  S().SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // A peer that closes without close_notify ends the connection like one that sends it: every
  // reply we read is framed (Content-Length or chunked), so a truncated one is still detected.
  S().SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (c.insecure_skip_tls_verify) {
    S().SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  } else {
    S().SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (c.ca.empty()) {
      S().SSL_CTX_set_default_verify_paths(ctx.get());
    } else if (auto ok = load_ca(ctx.get(), c.ca); !ok) {
      return ok.error();
    }
  }
  if (!c.client_cert.empty()) {
    if (auto ok = load_client_certificate(ctx.get(), c); !ok) return ok.error();
  }
  return ctx;
}

struct ApiClient::Lookup {
  std::string name;
  std::string service;
  addrinfo hints{};
  gaicb cb{};
};

const char* ApiClient::failure_name(Failure f) {
  switch (f) {
    case Failure::Resolve:
      return "resolve";
    case Failure::Connect:
      return "connect";
    case Failure::Verify:
      return "verify";
    case Failure::Handshake:
      return "handshake";
    case Failure::Timeout:
      return "timeout";
    case Failure::Closed:
      return "closed";
    case Failure::Io:
      return "io";
  }
  return "?";
}

ApiClient::ApiClient(net::EventLoop& loop, Visitor& visitor)
    : loop_(loop), visitor_(visitor), step_(loop, [this] { step(); }), timeout_(loop, [this] {
        fail(Failure::Timeout, state_ == State::Resolving    ? "name lookup timed out"
                               : state_ == State::Connecting ? "TCP connect timed out"
                                                             : "TLS handshake timed out");
      }) {}

ApiClient::~ApiClient() { close(); }

void ApiClient::connect(SslCtxPtr ctx, const std::string& host, uint16_t port,
                        const std::string& verify_name, Duration timeout) {
  ctx_ = std::move(ctx);
  port_ = port;
  verify_name_ = verify_name;
  timeout_.arm(timeout);
  if (is_ip_literal(host)) {
    addresses_.push_back(config::SocketAddress{host, port});
    state_ = State::Connecting;
    step_.arm(Duration::zero());  // failures are reported from the loop, never from connect()
    return;
  }
  state_ = State::Resolving;
  lookup_ = std::make_unique<Lookup>();
  lookup_->name = host;
  lookup_->service = std::to_string(port);
  lookup_->hints.ai_socktype = SOCK_STREAM;
  lookup_->hints.ai_family = AF_UNSPEC;
  lookup_->cb.ar_name = lookup_->name.c_str();
  lookup_->cb.ar_service = lookup_->service.c_str();
  lookup_->cb.ar_request = &lookup_->hints;
  gaicb* list[1] = {&lookup_->cb};
  int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, nullptr);
  if (rc != 0) {
    pending_failure_ = std::string("cannot look up ") + host + ": " + gai_strerror(rc);
    lookup_.reset();
  }
  step_.arm(std::chrono::milliseconds(lookup_ ? 2 : 0));
}

void ApiClient::step() {
  if (!pending_failure_.empty()) {
    fail(Failure::Resolve, pending_failure_);
  } else if (state_ == State::Resolving) {
    poll_lookup();
  } else if (state_ == State::Connecting && fd_ < 0) {
    connect_next();
  }
}

void ApiClient::poll_lookup() {
  if (!lookup_) return;
  int rc = gai_error(&lookup_->cb);
  if (rc == EAI_INPROGRESS) {
    step_.arm(std::chrono::milliseconds(5));
    return;
  }
  std::unique_ptr<Lookup> done = std::move(lookup_);
  if (rc != 0) {
    fail(Failure::Resolve, "cannot look up " + done->name + ": " + gai_strerror(rc));
    return;
  }
  for (addrinfo* ai = done->cb.ar_result; ai; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (ai->ai_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, text,
                sizeof(text));
    else if (ai->ai_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, text,
                sizeof(text));
    else
      continue;
    addresses_.push_back(config::SocketAddress{text, port_});
  }
  freeaddrinfo(done->cb.ar_result);
  if (addresses_.empty()) {
    fail(Failure::Resolve, "no address for " + done->name);
    return;
  }
  state_ = State::Connecting;
  connect_next();
}

void ApiClient::connect_next() {
  if (state_ != State::Connecting) return;
  if (fd_ >= 0) {
    loop_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
    interest_ = 0;
  }
  while (next_address_ < addresses_.size()) {
    auto fd = net::connect_tcp(addresses_[next_address_++]);
    if (!fd) {
      last_connect_error_ = fd.error().message;
      continue;
    }
    fd_ = *fd;
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    update_interest();
    return;
  }
  fail(Failure::Connect, last_connect_error_);
}

void ApiClient::start_handshake() {
  ssl_ = S().SSL_new(ctx_.get());
  if (!ssl_ || S().SSL_set_fd(ssl_, fd_) != 1) {
    fail(Failure::Handshake, openssl_error("cannot create the TLS session"));
    return;
  }
  const bool ip = is_ip_literal(verify_name_);
  if (ip) {
    S().X509_VERIFY_PARAM_set1_ip_asc(S().SSL_get0_param(ssl_), verify_name_.c_str());
  } else {
    S().SSL_set_tlsext_host_name(ssl_, verify_name_.c_str());  // SNI: names only, never IPs
    S().SSL_set1_host(ssl_, verify_name_.c_str());
  }
  state_ = State::Handshaking;
  do_handshake();
}

void ApiClient::do_handshake() {
  S().ERR_clear_error();
  int rc = S().SSL_connect(ssl_);
  if (rc == 1) {
    opened();
    // Application data may already sit in OpenSSL's buffer, where epoll cannot see it.
    if (state_ == State::Open) do_read();
    return;
  }
  int err = S().SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    read_wants_write_ = err == SSL_ERROR_WANT_WRITE;
    update_interest();
    return;
  }
  long verify = S().SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    S().ERR_clear_error();
    fail(Failure::Verify,
         std::string("certificate verify failed (") + S().X509_verify_cert_error_string(verify) + ")");
    return;
  }
  fail(Failure::Handshake, ssl_error_detail(rc));
}

std::string ApiClient::ssl_error_detail(int rc) {
  int err = S().SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_ZERO_RETURN) return "connection closed by the peer";
  if (err == SSL_ERROR_SYSCALL) {
    if (S().ERR_peek_error() != 0) return openssl_error("TLS error");
    return errno != 0 && rc < 0 ? std::string(strerror(errno)) : "connection closed by the peer";
  }
  return openssl_error("TLS error " + std::to_string(err));
}

void ApiClient::opened() {
  state_ = State::Open;
  timeout_.cancel();
  update_interest();
  visitor_.on_connected();
}

void ApiClient::do_plain_read() {
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof(buf));
    if (n > 0) {
      visitor_.on_data(std::string_view(buf, static_cast<size_t>(n)));
      if (state_ != State::Open) return;  // the visitor closed us
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n == 0) {
      fail(Failure::Closed, "connection closed by the peer");
    } else {
      fail(Failure::Io, strerror(errno));
    }
    return;
  }
  update_interest();
}

void ApiClient::do_plain_write() {
  while (!out_.empty()) {
    ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    fail(Failure::Io, strerror(errno));
    return;
  }
  update_interest();
}

void ApiClient::do_read() {
  if (!ssl_) {
    do_plain_read();
    return;
  }
  char buf[16384];
  read_wants_write_ = false;
  for (;;) {
    S().ERR_clear_error();
    errno = 0;
    int n = S().SSL_read(ssl_, buf, sizeof(buf));
    if (n > 0) {
      visitor_.on_data(std::string_view(buf, static_cast<size_t>(n)));
      if (state_ != State::Open) return;  // the visitor closed us
      continue;
    }
    int err = S().SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_WANT_WRITE) {
      read_wants_write_ = true;
      break;
    }
    bool eof = err == SSL_ERROR_ZERO_RETURN ||
               (err == SSL_ERROR_SYSCALL && S().ERR_peek_error() == 0 && errno == 0);
    fail(eof ? Failure::Closed : Failure::Io, ssl_error_detail(n));
    return;
  }
  update_interest();
}

void ApiClient::do_write() {
  if (!ssl_) {
    do_plain_write();
    return;
  }
  write_wants_read_ = false;
  while (!out_.empty()) {
    S().ERR_clear_error();
    errno = 0;
    int n = S().SSL_write(ssl_, out_.data(), static_cast<int>(std::min<size_t>(out_.size(), INT_MAX)));
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    int err = S().SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_WRITE) break;
    if (err == SSL_ERROR_WANT_READ) {
      write_wants_read_ = true;
      break;
    }
    fail(Failure::Io, ssl_error_detail(n));
    return;
  }
  update_interest();
}

void ApiClient::send(std::string_view bytes) {
  if (state_ == State::Closed) return;
  out_.append(bytes.data(), bytes.size());
  if (state_ == State::Open) update_interest();
}

void ApiClient::on_io(uint32_t events) {
  switch (state_) {
    case State::Connecting: {
      int err = net::socket_error(fd_);
      if (err != 0) {
        last_connect_error_ = std::string("connect: ") + strerror(err);
        connect_next();
        return;
      }
      if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        if (ctx_) {
          start_handshake();
        } else {
          opened();
        }
      }
      return;
    }
    case State::Handshaking:
      do_handshake();
      return;
    case State::Open:
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP) || (read_wants_write_ && (events & EPOLLOUT)))
        do_read();
      if (state_ == State::Open && (!out_.empty()) &&
          (events & EPOLLOUT || (write_wants_read_ && (events & EPOLLIN))))
        do_write();
      if (state_ == State::Open) update_interest();
      return;
    case State::Idle:
    case State::Resolving:
    case State::Closed:
      return;
  }
}

void ApiClient::update_interest() {
  if (fd_ < 0) return;
  uint32_t want = 0;
  if (state_ == State::Connecting) {
    want = EPOLLOUT;
  } else if (state_ == State::Handshaking) {
    want = read_wants_write_ ? EPOLLOUT : EPOLLIN;
  } else if (state_ == State::Open) {
    want = EPOLLIN;
    if (read_wants_write_ || (!out_.empty() && !write_wants_read_)) want |= EPOLLOUT;
  }
  if (want == interest_) return;
  if (interest_ == 0)
    loop_.add(fd_, want, this);
  else
    loop_.modify(fd_, want, this);
  interest_ = want;
}

void ApiClient::fail(Failure failure, const std::string& detail) {
  if (state_ == State::Closed) return;
  close();
  visitor_.on_closed(failure, detail);
}

void ApiClient::close() {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  timeout_.cancel();
  step_.cancel();
  if (lookup_) {
    int rc = gai_cancel(&lookup_->cb);
    if (rc == EAI_ALLDONE) {
      if (gai_error(&lookup_->cb) == 0) freeaddrinfo(lookup_->cb.ar_result);
      lookup_.reset();
    } else if (rc == EAI_NOTCANCELED) {
      // glibc's lookup thread still writes into the control block and reads the name: keep the
      // whole lookup alive (and reachable) until exit.
      static std::mutex mu;
      static auto* abandoned = new std::vector<std::unique_ptr<Lookup>>;
      std::lock_guard<std::mutex> lock(mu);
      abandoned->push_back(std::move(lookup_));
    } else {
      lookup_.reset();
    }
  }
  if (ssl_) {
    S().SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    if (interest_ != 0) loop_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  interest_ = 0;
  out_.clear();
}

}  // namespace h2mesh::discovery::k8s
