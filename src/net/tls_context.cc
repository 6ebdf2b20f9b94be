#include "net/tls_context.h"

#include <ctime>

#include "common/log.h"
#include "net/openssl_api.h"

namespace h2mesh::net {
namespace {

// Sessions resumed with a ticket or an id are only accepted under the context that made them;
// with client certificates OpenSSL insists on one being set.
constexpr unsigned char kSessionIdContext[] = "h2mesh";

// One loaded set of certificates: the contexts SNI chooses from, and what the callbacks of all
// of them read. Owned by the default context (ex_data, freed with it): a connection holds the
// default context until it ends, so whatever SNI switched it to stays alive as long as it does,
// even after a reload or after the TlsContext is gone.
struct Generation {
  std::string alpn_wire;  // the ALPN protocols in the wire format (length-prefixed names)
  bool alpn_required = false;
  std::vector<SSL_CTX*> all;             // default first; not owned
  std::vector<SslCtxHandle> alternates;  // all[1..]
};

void free_generation(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<Generation*>(ptr);
}

int generation_index() {
  static const int index = S().CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, nullptr,
                                                       nullptr, free_generation);
  return index;
}

// Picks the first of the server's protocols the client offers. No overlap: fail the handshake
// when ALPN is required (a gRPC client always offers h2; one that offers only http/1.1 learns at
// once that it cannot talk here), else carry on without ALPN.
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                unsigned int in_len, void* arg) {
  const auto* g = static_cast<const Generation*>(arg);
  unsigned char* selected = nullptr;
  int r = S().SSL_select_next_proto(&selected, out_len,
                                    reinterpret_cast<const unsigned char*>(g->alpn_wire.data()),
                                    static_cast<unsigned int>(g->alpn_wire.size()), in, in_len);
  if (r != OPENSSL_NPN_NEGOTIATED)
    return g->alpn_required ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// SNI: the first certificate naming the host exactly, else the first whose wildcard matches it,
// else the default. A name matching nothing is not an error: the client decides whether the
// default certificate will do.
int select_certificate(SSL* ssl, int*, void* arg) {
  const auto* g = static_cast<const Generation*>(arg);
  const char* name = S().SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name || !*name) return SSL_TLSEXT_ERR_NOACK;
  for (unsigned int flags : {static_cast<unsigned int>(X509_CHECK_FLAG_NO_WILDCARDS), 0u}) {
    for (SSL_CTX* ctx : g->all) {
      X509* leaf = S().SSL_CTX_get0_certificate(ctx);
      if (leaf && S().X509_check_host(leaf, name, 0, flags, nullptr) == 1) {
        if (ctx != g->all.front()) S().SSL_set_SSL_CTX(ssl, ctx);
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

std::vector<std::string> watched_paths(const TlsServerSettings& settings) {
  std::vector<std::string> paths;
  for (const auto& c : settings.certificates) {
    paths.push_back(c.cert_file);
    paths.push_back(c.key_file);
  }
  if (!settings.ca_file.empty()) paths.push_back(settings.ca_file);
  return paths;
}

}  // namespace

Error tls_error(std::string message) {
  return make_error(ErrorCode::InvalidArgument, std::move(message));
}

std::string openssl_error_text(const std::string& fallback) {
  unsigned long e = S().ERR_get_error();
  S().ERR_clear_error();
  if (e == 0) return fallback;
  char buf[256];
  S().ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

std::string serial_hex(X509* cert) {
  BIGNUM* bn = S().ASN1_INTEGER_to_BN(S().X509_get_serialNumber(cert), nullptr);
  if (!bn) return "";
  char* hex = S().BN_bn2hex(bn);
  std::string out = hex ? hex : "";
  if (hex) S().CRYPTO_free(hex, __FILE__, __LINE__);
  S().BN_free(bn);
  return out;
}

int64_t asn1_time_to_unix(const ASN1_TIME* time) {
  struct tm tm {};
  if (!time || S().ASN1_TIME_to_tm(time, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

void SslCtxDeleter::operator()(SSL_CTX* ctx) const { S().SSL_CTX_free(ctx); }

TlsContext::TlsContext(TlsServerSettings settings)
    : settings_(std::move(settings)),
      watched_(watched_paths(settings_), settings_.check_interval, "the certificate files",
               "the previous certificate stays in use") {}

TlsContext::~TlsContext() = default;

Result<std::unique_ptr<TlsContext>> TlsContext::load(TlsServerSettings settings) {
  if (settings.certificates.empty()) return tls_error("no certificate to serve");
  for (const auto& p : settings.alpn)
    if (p.empty() || p.size() > 255) return tls_error("bad ALPN protocol name '" + p + "'");
  if (settings.require_client_cert && settings.ca_file.empty())
    return tls_error("requiring client certificates needs a CA bundle to verify them");
  std::string why;
  if (!openssl(&why)) return tls_error(why);
  std::unique_ptr<TlsContext> c(new TlsContext(std::move(settings)));
  // Stamped before they are read: a change while they are read is seen at the next look.
  if (auto st = c->watched_.start(); !st) return st.error();
  auto ctx = c->make(&c->certificates_);
  if (!ctx) return ctx.error();
  c->ctx_ = std::move(*ctx);
  return c;
}

Result<SslCtxHandle> new_ssl_ctx(const SSL_METHOD* method) {
  SslCtxHandle ctx(S().SSL_CTX_new(method));
  if (!ctx) return tls_error("cannot create a TLS context: " + openssl_error_text("unknown error"));
  SSL_CTX* c = ctx.get();
  S().SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  // Partial writes: each SSL_write makes one record, which TlsTransport accounts for; read-ahead:
  // one read(2) takes every record the socket holds, not a 5-byte header and then its body
  // (net/tls_transport.cc).
  S().SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  S().SSL_CTX_set_read_ahead(c, 1);
  // No renegotiation (a peer could make us redo the expensive half of a handshake at will), no
  // compression. A peer closing without close_notify ends the stream like one that sends it:
  // what we read is framed (HTTP/2 frames, Content-Length or chunks), so a truncation is still
  // noticed. Tickets stay on: they are how sessions resume.
  S().SSL_CTX_set_options(
      c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (S().SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1)
    return tls_error("cannot set the TLS 1.2 ciphers: " + openssl_error_text("unknown error"));
  return ctx;
}

Result<SslCtxHandle> TlsContext::make_one(const TlsCertificateFiles& files,
                                          void* generation) const {
  auto made = new_ssl_ctx(S().TLS_server_method());
  if (!made) return made.error();
  SslCtxHandle ctx = std::move(*made);
  SSL_CTX* c = ctx.get();
  S().SSL_CTX_set_session_id_context(c, kSessionIdContext, sizeof(kSessionIdContext) - 1);
  if (S().SSL_CTX_use_certificate_chain_file(c, files.cert_file.c_str()) != 1) {
    return tls_error("bad certificate " + files.cert_file + ": " +
                     openssl_error_text("no PEM certificate"));
  }
  if (S().SSL_CTX_use_PrivateKey_file(c, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return tls_error("bad key " + files.key_file + ": " + openssl_error_text("no PEM private key"));
  }
  if (S().SSL_CTX_check_private_key(c) != 1) {
    return tls_error("the key " + files.key_file + " does not match the certificate " +
                     files.cert_file + ": " + openssl_error_text("mismatch"));
  }
  if (!settings_.ca_file.empty()) {
    if (S().SSL_CTX_load_verify_locations(c, settings_.ca_file.c_str(), nullptr) != 1) {
      return tls_error("bad CA bundle " + settings_.ca_file + ": " +
                       openssl_error_text("no PEM certificate"));
    }
    int mode = SSL_VERIFY_PEER;
    if (settings_.require_client_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    S().SSL_CTX_set_verify(c, mode, nullptr);
  }
  // Every context of a generation answers ALPN alike: SNI may switch a connection to any of them
  // before ALPN is decided.
  if (!settings_.alpn.empty()) S().SSL_CTX_set_alpn_select_cb(c, select_alpn, generation);
  return ctx;
}

Result<SslCtxHandle> TlsContext::make(std::vector<TlsCertificateInfo>* infos) const {
  S().ERR_clear_error();
  auto generation = std::make_unique<Generation>();
  for (const auto& p : settings_.alpn) {
    generation->alpn_wire.push_back(static_cast<char>(p.size()));
    generation->alpn_wire += p;
  }
  generation->alpn_required = settings_.alpn_required;
  std::vector<SslCtxHandle> made;
  std::vector<TlsCertificateInfo> certs;
  for (const auto& files : settings_.certificates) {
    auto ctx = make_one(files, generation.get());
    if (!ctx) return ctx.error();
    X509* leaf = S().SSL_CTX_get0_certificate(ctx->get());
    certs.push_back(
        TlsCertificateInfo{files.cert_file, asn1_time_to_unix(S().X509_get0_notAfter(leaf)),
                           asn1_time_to_unix(S().X509_get0_notBefore(leaf)), serial_hex(leaf)});
    made.push_back(std::move(*ctx));
  }
  for (auto& ctx : made) generation->all.push_back(ctx.get());
  SslCtxHandle first = std::move(made.front());
  for (size_t i = 1; i < made.size(); ++i) generation->alternates.push_back(std::move(made[i]));
  if (generation->all.size() > 1) {
    S().SSL_CTX_set_tlsext_servername_callback(first.get(), select_certificate);
    S().SSL_CTX_set_tlsext_servername_arg(first.get(), generation.get());
  }
  const int index = generation_index();
  if (index < 0 || S().SSL_CTX_set_ex_data(first.get(), index, generation.get()) != 1)
    return tls_error("cannot attach the certificates to the TLS context");
  generation.release();  // the default context owns it now
  *infos = std::move(certs);
  return first;
}

SSL_CTX* TlsContext::current(TimePoint now) {
  watched_.check(now, [this]() -> Result<void> {
    std::vector<TlsCertificateInfo> infos;
    auto next = make(&infos);
    if (!next) return next.error();
    ctx_ = std::move(*next);
    certificates_ = std::move(infos);
    LOG_INFO("tls: loaded the new certificate %s (serial %s)",
             settings_.certificates.front().cert_file.c_str(),
             certificates_.front().serial.c_str());
    return {};
  });
  return ctx_.get();
}

}  // namespace h2mesh::net
