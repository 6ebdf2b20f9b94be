#include "net/tls_context.h"

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "net/openssl_api.h"

namespace h2mesh::net {
namespace {

const OpenSsl& S() { return *openssl(nullptr); }

Error tls_error(std::string message) {
  return make_error(ErrorCode::InvalidArgument, std::move(message));
}

// TLS 1.2's forward-secret AEAD suites (TLS 1.3 has only such suites and keeps its defaults).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Picks the first of the server's protocols the client offers. No overlap: carry on without
// ALPN rather than fail the handshake (an HTTP/1.1 server can still answer a client that
// offered only h2 with an error it can read).
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                unsigned int in_len, void* arg) {
  const auto* wire = static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  int r = S().SSL_select_next_proto(&selected, out_len,
                                    reinterpret_cast<const unsigned char*>(wire->data()),
                                    static_cast<unsigned int>(wire->size()), in, in_len);
  if (r != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

bool same_time(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

}  // namespace

std::string openssl_error_text(const std::string& fallback) {
  unsigned long e = S().ERR_get_error();
  S().ERR_clear_error();
  if (e == 0) return fallback;
  char buf[256];
  S().ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

void SslCtxDeleter::operator()(SSL_CTX* ctx) const { S().SSL_CTX_free(ctx); }

bool TlsContext::Stamp::operator==(const Stamp& o) const {
  return cert_dev == o.cert_dev && key_dev == o.key_dev && cert_ino == o.cert_ino &&
         key_ino == o.key_ino && cert_size == o.cert_size && key_size == o.key_size &&
         same_time(cert_mtime, o.cert_mtime) && same_time(key_mtime, o.key_mtime);
}

TlsContext::TlsContext(TlsServerSettings settings) : settings_(std::move(settings)) {
  for (const auto& p : settings_.alpn) {
    alpn_wire_.push_back(static_cast<char>(p.size()));
    alpn_wire_ += p;
  }
}

TlsContext::~TlsContext() = default;

Result<std::unique_ptr<TlsContext>> TlsContext::load(TlsServerSettings settings) {
  for (const auto& p : settings.alpn)
    if (p.empty() || p.size() > 255) return tls_error("bad ALPN protocol name '" + p + "'");
  std::string why;
  if (!openssl(&why)) return tls_error(why);
  std::unique_ptr<TlsContext> c(new TlsContext(std::move(settings)));
  auto st = c->stamp();
  if (!st) return st.error();
  auto ctx = c->make();
  if (!ctx) return ctx.error();
  c->ctx_ = std::move(*ctx);
  c->loaded_ = *st;
  return c;
}

Result<TlsContext::Stamp> TlsContext::stamp() const {
  Stamp s;
  struct stat cert {
  }, key{};
  // stat, not lstat: a Secret volume's files are symlinks into a directory that is swapped.
  if (::stat(settings_.cert_file.c_str(), &cert) != 0)
    return tls_error("cannot read the certificate " + settings_.cert_file + ": " + strerror(errno));
  if (::stat(settings_.key_file.c_str(), &key) != 0)
    return tls_error("cannot read the key " + settings_.key_file + ": " + strerror(errno));
  s.cert_dev = cert.st_dev;
  s.cert_ino = cert.st_ino;
  s.cert_size = cert.st_size;
  s.cert_mtime = cert.st_mtim;
  s.key_dev = key.st_dev;
  s.key_ino = key.st_ino;
  s.key_size = key.st_size;
  s.key_mtime = key.st_mtim;
  return s;
}

Result<SslCtxHandle> TlsContext::make() const {
  S().ERR_clear_error();
  SslCtxHandle ctx(S().SSL_CTX_new(S().TLS_server_method()));
  if (!ctx) return tls_error("cannot create a TLS context: " + openssl_error_text("unknown error"));
  SSL_CTX* c = ctx.get();
  S().SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  S().SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
  // No renegotiation (a client could make us redo the expensive half of a handshake at will);
  // a client closing without close_notify is an end of stream like any other (every request is
  // framed, so a truncated one is still noticed).
  S().SSL_CTX_set_options(
      c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (S().SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1)
    return tls_error("cannot set the TLS 1.2 ciphers: " + openssl_error_text("unknown error"));
  if (S().SSL_CTX_use_certificate_chain_file(c, settings_.cert_file.c_str()) != 1) {
    return tls_error("bad certificate " + settings_.cert_file + ": " +
                     openssl_error_text("no PEM certificate"));
  }
  if (S().SSL_CTX_use_PrivateKey_file(c, settings_.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return tls_error("bad key " + settings_.key_file + ": " +
                     openssl_error_text("no PEM private key"));
  }
  if (S().SSL_CTX_check_private_key(c) != 1) {
    return tls_error("the key " + settings_.key_file + " does not match the certificate " +
                     settings_.cert_file + ": " + openssl_error_text("mismatch"));
  }
  if (!alpn_wire_.empty()) {
    // The callback's argument lives in this object, which outlives every connection.
    S().SSL_CTX_set_alpn_select_cb(c, select_alpn, const_cast<std::string*>(&alpn_wire_));
  }
  return ctx;
}

SSL_CTX* TlsContext::current(TimePoint now) {
  if (now - checked_ < settings_.check_interval) return ctx_.get();
  checked_ = now;
  auto st = stamp();
  if (st && *st == loaded_) return ctx_.get();
  if (st && have_failed_ && *st == failed_) return ctx_.get();  // logged already
  Result<SslCtxHandle> next = st ? make() : Result<SslCtxHandle>(st.error());
  if (!next) {
    ++reload_failures_;
    // A file missing for a moment (stat failed) is tried again at the next look; a pair that
    // does not load is remembered so that it is logged once.
    if (st) {
      failed_ = *st;
      have_failed_ = true;
    }
    if (next.error().message != logged_failure_) {
      logged_failure_ = next.error().message;
      LOG_WARN(
          "tls: the certificate files changed but do not load (%s); the previous "
          "certificate stays in use",
          logged_failure_.c_str());
    }
    return ctx_.get();
  }
  ctx_ = std::move(*next);
  loaded_ = *st;
  have_failed_ = false;
  logged_failure_.clear();
  ++reloads_;
  LOG_INFO("tls: loaded the new certificate %s", settings_.cert_file.c_str());
  return ctx_.get();
}

}  // namespace h2mesh::net
