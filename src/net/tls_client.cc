#include "net/tls_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "net/openssl_api.h"

namespace h2mesh::net {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

struct BioFree {
  void operator()(BIO* b) const { S().BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr memory_bio(const std::string& text) {
  return BioPtr(S().BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

Result<std::string> read_pem_file(const std::string& path, const char* what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return tls_error(std::string("cannot read the ") + what + " " + path + ": " + strerror(errno));
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return tls_error(std::string("cannot read the ") + what + " " + path + ": " + strerror(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxPemBytes) {
      ::close(fd);
      return tls_error(std::string("the ") + what + " " + path + " is larger than 1 MiB");
    }
  }
  ::close(fd);
  return text;
}

Result<void> load_ca(SSL_CTX* ctx, const TlsClientPem& pem) {
  BioPtr bio = memory_bio(pem.ca);
  X509_STORE* store = S().SSL_CTX_get_cert_store(ctx);
  int count = 0;
  while (X509* cert = S().PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    S().X509_STORE_add_cert(store, cert);  // takes a reference of its own
    S().X509_free(cert);
    ++count;
  }
  S().ERR_clear_error();  // the loop ends with a "no start line" error
  if (count == 0) return tls_error("no PEM certificate in the " + pem.ca_name);
  return {};
}

Result<void> load_client_certificate(SSL_CTX* ctx, const TlsClientPem& pem) {
  BioPtr bio = memory_bio(pem.cert);
  X509* leaf = S().PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (!leaf)
    return tls_error("bad " + pem.cert_name + ": " + openssl_error_text("no PEM certificate"));
  BioPtr kbio = memory_bio(pem.key);
  EVP_PKEY* key = S().PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr);
  if (!key) {
    S().X509_free(leaf);
    return tls_error("bad " + pem.key_name + ": " + openssl_error_text("no PEM private key"));
  }
  // Said in those words before OpenSSL's "key values mismatch" can be.
  const bool match = S().X509_check_private_key(leaf, key) == 1;
  S().ERR_clear_error();
  const bool used = match && S().SSL_CTX_use_certificate(ctx, leaf) == 1 &&
                    S().SSL_CTX_use_PrivateKey(ctx, key) == 1;
  S().X509_free(leaf);
  S().EVP_PKEY_free(key);
  if (!match) {
    return tls_error("the " + pem.key_name + " does not match the " + pem.cert_name);
  }
  if (!used) {
    return tls_error("cannot use the " + pem.cert_name + ": " +
                     openssl_error_text("unknown error"));
  }
  // The intermediates, sent after the leaf.
  while (X509* extra = S().PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    S().SSL_CTX_add_extra_chain_cert(ctx, extra);  // takes ownership
  S().ERR_clear_error();
  return {};
}

// OpenSSL hands over each session a server issues (TLS 1.3 sends them after the handshake, while
// the connection reads). The connection's check says where it goes.
int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* check = static_cast<TlsPeerCheck*>(S().SSL_get_ex_data(ssl, 0));
  if (!check || !check->sessions || S().SSL_SESSION_is_resumable(session) != 1) return 0;
  check->sessions->store(session, check->generation);
  return 1;  // we keep the reference
}

std::string asn1_text(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(S().ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(S().ASN1_STRING_length(s)));
}

bool is_ip_literal(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

}  // namespace

bool verifies_peer(SSL_CTX* ctx) { return S().SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE; }

const char* tls_client_result_name(TlsClientResult result) {
  switch (result) {
    case TlsClientResult::Ok:
      return "ok";
    case TlsClientResult::Resumed:
      return "resumed";
    case TlsClientResult::VerifyFailed:
      return "verify_failed";
    case TlsClientResult::SanMismatch:
      return "san_mismatch";
    case TlsClientResult::NoAlpn:
      return "no_alpn";
    case TlsClientResult::Protocol:
      return "protocol";
    case TlsClientResult::Timeout:
      return "timeout";
  }
  return "?";
}

Result<SslCtxHandle> make_client_ssl_ctx(const TlsClientPem& pem) {
  std::string why;
  if (!openssl(&why)) return tls_error(why);
  std::string alpn_wire;
  for (const auto& p : pem.alpn) {
    if (p.empty() || p.size() > 255) return tls_error("bad ALPN protocol name '" + p + "'");
    alpn_wire.push_back(static_cast<char>(p.size()));
    alpn_wire += p;
  }
  S().ERR_clear_error();
  auto made = new_ssl_ctx(S().TLS_client_method());
  if (!made) return made.error();
  SslCtxHandle ctx = std::move(*made);
  SSL_CTX* c = ctx.get();
  if (!pem.verify) {
    S().SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  } else {
    S().SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    if (pem.ca.empty()) {
      if (S().SSL_CTX_set_default_verify_paths(c) != 1)
        return tls_error("cannot use the system's CA store: " +
                         openssl_error_text("unknown error"));
    } else if (auto ok = load_ca(c, pem); !ok) {
      return ok.error();
    }
  }
  if (!pem.cert.empty() || !pem.key.empty()) {
    if (auto ok = load_client_certificate(c, pem); !ok) return ok.error();
  }
  if (!alpn_wire.empty() &&
      S().SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(alpn_wire.data()),
                                  static_cast<unsigned int>(alpn_wire.size())) != 0) {
    return tls_error("cannot set the ALPN offer: " + openssl_error_text("unknown error"));
  }
  // Sessions are kept by the caller per endpoint (TlsSessionSlot), not in OpenSSL's cache.
  S().SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  S().SSL_CTX_sess_set_new_cb(c, on_new_session);
  return ctx;
}

// ---- TlsClientContext -----------------------------------------------------------------------

TlsClientContext::TlsClientContext(TlsClientFiles files)
    : files_(std::move(files)),
      watched_({files_.ca, files_.cert, files_.key}, files_.check_interval,
               "the client TLS files", "the previous ones stay in use") {}

Result<std::unique_ptr<TlsClientContext>> TlsClientContext::load(TlsClientFiles files) {
  if (files.cert.empty() != files.key.empty())
    return tls_error("a client certificate needs both a certificate and a key file");
  std::string why;
  if (!openssl(&why)) return tls_error(why);
  std::unique_ptr<TlsClientContext> c(new TlsClientContext(std::move(files)));
  if (auto st = c->watched_.start(); !st) return st.error();
  auto ctx = c->make();
  if (!ctx) return ctx.error();
  c->use(std::move(*ctx));
  return c;
}

void TlsClientContext::use(SslCtxHandle ctx) {
  ctx_ = std::move(ctx);
  certificates_.clear();
  if (files_.cert.empty()) return;
  if (X509* leaf = S().SSL_CTX_get0_certificate(ctx_.get()))
    certificates_.push_back(TlsCertificateInfo{
        files_.cert, asn1_time_to_unix(S().X509_get0_notAfter(leaf)),
        asn1_time_to_unix(S().X509_get0_notBefore(leaf)), serial_hex(leaf)});
}

Result<SslCtxHandle> TlsClientContext::make() const {
  TlsClientPem pem;
  pem.alpn = files_.alpn;
  if (!files_.ca.empty()) {
    auto text = read_pem_file(files_.ca, "CA bundle");
    if (!text) return text.error();
    pem.ca = std::move(*text);
    pem.ca_name = "CA bundle " + files_.ca;
  }
  if (!files_.cert.empty()) {
    auto cert = read_pem_file(files_.cert, "client certificate");
    if (!cert) return cert.error();
    auto key = read_pem_file(files_.key, "client key");
    if (!key) return key.error();
    pem.cert = std::move(*cert);
    pem.key = std::move(*key);
    pem.cert_name = "client certificate " + files_.cert;
    pem.key_name = "client key " + files_.key;
  }
  return make_client_ssl_ctx(pem);
}

SSL_CTX* TlsClientContext::current(TimePoint now) {
  watched_.check(now, [this]() -> Result<void> {
    auto next = make();
    if (!next) return next.error();
    use(std::move(*next));
    LOG_INFO("tls: reloaded the client TLS files (CA %s, certificate %s)",
             files_.ca.empty() ? "system store" : files_.ca.c_str(),
             files_.cert.empty() ? "none" : files_.cert.c_str());
    return {};
  });
  return ctx_.get();
}

// ---- TlsSessionSlot -------------------------------------------------------------------------

TlsSessionSlot::~TlsSessionSlot() { clear(); }

void TlsSessionSlot::store(SSL_SESSION* session, uint64_t generation) {
  clear();
  session_ = session;
  generation_ = generation;
}

SSL_SESSION* TlsSessionSlot::get(uint64_t generation) const {
  return generation == generation_ ? session_ : nullptr;
}

void TlsSessionSlot::clear() {
  if (session_) S().SSL_SESSION_free(session_);
  session_ = nullptr;
}

// ---- Names ----------------------------------------------------------------------------------

bool check_peer_names(X509* cert, const std::vector<std::string>& names, std::string* why) {
  if (names.empty()) return true;
  auto* sans = static_cast<GENERAL_NAMES*>(
      S().X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  std::vector<std::string> uris;
  std::string carried;
  const int count = sans ? S().OPENSSL_sk_num(reinterpret_cast<const OPENSSL_STACK*>(sans)) : 0;
  for (int i = 0; i < count; ++i) {
    auto* gn = static_cast<GENERAL_NAME*>(
        S().OPENSSL_sk_value(reinterpret_cast<const OPENSSL_STACK*>(sans), i));
    std::string entry;
    if (gn->type == GEN_URI) {
      uris.push_back(asn1_text(gn->d.uniformResourceIdentifier));
      entry = "URI:" + uris.back();
    } else if (gn->type == GEN_DNS) {
      entry = "DNS:" + asn1_text(gn->d.dNSName);
    } else if (gn->type == GEN_IPADD) {
      const std::string raw = asn1_text(gn->d.iPAddress);
      char text[INET6_ADDRSTRLEN] = "?";
      if (raw.size() == 4) inet_ntop(AF_INET, raw.data(), text, sizeof(text));
      if (raw.size() == 16) inet_ntop(AF_INET6, raw.data(), text, sizeof(text));
      entry = std::string("IP:") + text;
    }
    if (entry.empty()) continue;
    if (!carried.empty()) carried += ", ";
    carried += entry;
  }
  if (sans) S().GENERAL_NAMES_free(sans);
  for (const std::string& name : names) {
    if (name.find("://") != std::string::npos) {
      for (const std::string& uri : uris)
        if (uri == name) return true;
    } else if (is_ip_literal(name)) {
      if (S().X509_check_ip_asc(cert, name.c_str(), 0) == 1) return true;
    } else if (S().X509_check_host(cert, name.data(), name.size(),
                                   X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr) == 1) {
      return true;
    }
  }
  if (why) {
    std::string expected;
    for (const std::string& name : names) expected += (expected.empty() ? "" : ", ") + name;
    *why = "the server certificate carries none of the expected names (" + expected + "); it has " +
           (carried.empty() ? "no SAN" : carried);
  }
  return false;
}

}  // namespace h2mesh::net
