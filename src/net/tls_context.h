#pragma once

// A server-side TLS context made from certificate chains and private keys in PEM files, for
// listeners that terminate TLS (client listeners and the admission webhook). TLS 1.2 and 1.3
// only, forward-secret AEAD ciphers for 1.2 (1.3's are all that), no renegotiation, no
// compression, and ALPN chosen from the protocols the owner offers.
//
// Several certificates may be served: the client's SNI picks the first whose SANs match it
// (exact names before wildcards), the first is the default. With a CA bundle, client
// certificates are asked for and verified against it (and may be required).
//
// The files are watched: Kubernetes updates a mounted Secret by swapping a symlink to a new
// directory, so certificates rotate without a restart. current() looks at the files (stat,
// symlinks followed) at most once per check interval and makes a new context when they changed.
// A set that does not load (a missing file, a key that does not match, a half-written file)
// keeps the context in use and is logged once; the next change is tried again. Connections keep
// the context they started with (OpenSSL counts its references, and the certificates SNI may
// switch to live as long as the context a connection started with), so a reload never disturbs
// them, and neither does deleting this object.

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/time.h"
#include "net/tls_files.h"

namespace h2mesh::net {

// TLS 1.2's forward-secret AEAD suites, for both sides (TLS 1.3 has only such suites and keeps
// its defaults).
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const;
};
using SslCtxHandle = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

struct TlsCertificateFiles {
  std::string cert_file;  // PEM: the leaf first, then its intermediates
  std::string key_file;   // PEM: the leaf's private key (unencrypted)
};

struct TlsServerSettings {
  std::vector<TlsCertificateFiles> certificates;  // at least one; the first is the default
  // ALPN, in order of preference.
  std::vector<std::string> alpn;
  // A client that offers ALPN but none of `alpn` fails the handshake (no_application_protocol)
  // when set; otherwise it connects without ALPN. A client offering no ALPN always connects.
  bool alpn_required = false;
  std::string ca_file;  // PEM bundle; set: client certificates are asked for and verified
  bool require_client_cert = false;  // with ca_file: a client without one fails the handshake
  Duration check_interval = std::chrono::seconds(1);
};

// What is being served: for the expiry metric, /ready and logs.
struct TlsCertificateInfo {
  std::string path;        // the certificate file
  int64_t not_after = 0;   // Unix time
  int64_t not_before = 0;  // Unix time
  std::string serial;      // hex, upper case
};

// Used on one thread (the loop that accepts connections).
class TlsContext {
 public:
  // Loads the files once (blocking reads of small files). An error names the file and why.
  static Result<std::unique_ptr<TlsContext>> load(TlsServerSettings settings);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // The context for a connection accepted at `now`: first reloads the files when they changed
  // and the last look was at least one check interval ago. Never null; owned by this object
  // (SSL_new takes a reference of its own).
  SSL_CTX* current(TimePoint now);

  // The certificates of the context in use, in the settings' order.
  const std::vector<TlsCertificateInfo>& certificates() const { return certificates_; }
  const TlsServerSettings& settings() const { return settings_; }

  // For /metrics and tests.
  uint64_t reloads() const { return watched_.reloads(); }
  uint64_t reload_failures() const { return watched_.reload_failures(); }

 private:
  explicit TlsContext(TlsServerSettings settings);
  Result<SslCtxHandle> make(std::vector<TlsCertificateInfo>* infos) const;
  Result<SslCtxHandle> make_one(const TlsCertificateFiles& files, void* generation) const;

  const TlsServerSettings settings_;
  SslCtxHandle ctx_;
  std::vector<TlsCertificateInfo> certificates_;
  // Every file: certificates and keys, then the CA.
  WatchedFiles watched_;
};

// A new context of `method` (TLS_server_method or TLS_client_method) with what both sides set
// alike: TLS 1.2 and up, kTls12Ciphers, no renegotiation and no compression, a peer's close
// without close_notify taken as an end of stream, and the modes TlsTransport's I/O relies on
// (one record per SSL_write, read-ahead). Only after openssl() loaded the library.
Result<SslCtxHandle> new_ssl_ctx(const SSL_METHOD* method);

// A TLS setting or file that cannot be used (ErrorCode::InvalidArgument), saying which and why.
Error tls_error(std::string message);

// The oldest queued OpenSSL error as text, or `fallback` when there is none; clears the queue.
// Only after openssl() loaded the library.
std::string openssl_error_text(const std::string& fallback);

// Unix time of an ASN1_TIME (notBefore, notAfter); 0 when it cannot be read. Only after
// openssl() loaded the library.
int64_t asn1_time_to_unix(const ASN1_TIME* time);
// A certificate's serial number in upper-case hex; "" when it cannot be read. Same condition.
std::string serial_hex(X509* cert);

}  // namespace h2mesh::net
