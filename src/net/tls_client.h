#pragma once

// The client side of TLS, shared by the upstream pools (clusters with `tls`) and the Kubernetes
// API client, so that OpenSSL is configured in one place: TLS 1.2 and 1.3, forward-secret AEAD
// suites for 1.2, no renegotiation, no compression, session tickets on (resumption), the peer's
// chain verified against a CA bundle or the system store, an optional client certificate (mTLS)
// and an ALPN offer. The names a certificate must carry are checked by TlsTransport once the
// handshake is done (check_peer_names), so that a wrong chain and a wrong name are told apart.

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/time.h"
#include "net/tls_context.h"
#include "net/tls_files.h"

namespace h2mesh::net {

// How one client handshake ended, for h2mesh_upstream_tls_handshakes_total{result}.
enum class TlsClientResult : uint8_t {
  Ok,            // a full handshake
  Resumed,       // an abbreviated one: a session of an earlier connection was accepted
  VerifyFailed,  // the chain did not verify (unknown CA, expired, not yet valid, ...)
  SanMismatch,   // the chain verified but carries none of the expected names
  NoAlpn,        // the server did not select the protocol we require (h2)
  Protocol,      // any other failure: no common version or cipher, reset, garbage
  Timeout,       // given up on (connect_timeout) before the handshake finished
};
inline constexpr size_t kTlsClientResults = 7;
const char* tls_client_result_name(TlsClientResult result);
using TlsClientCounters = std::array<uint64_t, kTlsClientResults>;

// What a client context is made of, as PEM text (read from files or given inline, as kubeconfig
// does). The *_name fields name the source in errors ("/etc/ssl/ca.crt", "kubeconfig data").
struct TlsClientPem {
  bool verify = true;  // false: accept any chain (kubeconfig insecure-skip-tls-verify only)
  std::string ca;      // one or more certificates; empty: the system's store
  std::string cert;    // client certificate chain, leaf first; empty: none
  std::string key;
  std::string ca_name = "CA", cert_name = "client certificate", key_name = "client key";
  std::vector<std::string> alpn;  // offered, in order of preference; empty: no ALPN
};

// A new client SSL_CTX. Loads OpenSSL on first use. Errors say which input is wrong and why.
Result<SslCtxHandle> make_client_ssl_ctx(const TlsClientPem& pem);

// The files behind a reloading client context.
struct TlsClientFiles {
  std::string ca;    // "" = the system's store
  std::string cert;  // "" = no client certificate (then also no key)
  std::string key;
  std::vector<std::string> alpn = {"h2"};
  Duration check_interval = std::chrono::seconds(1);
};

// A client context made from files and reloaded when they change, like TlsContext: current()
// stats them (symlinks followed) at most once per check interval; a set of files that does not
// load keeps the context in use and is logged once. Used on one thread (a worker).
class TlsClientContext {
 public:
  // Reads the files once (small, blocking). An error names the file and why.
  static Result<std::unique_ptr<TlsClientContext>> load(TlsClientFiles files);
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // The context for a connection opened at `now`. Never null; SSL_new takes its own reference.
  SSL_CTX* current(TimePoint now);
  // Bumped at every reload: sessions made under an older context (an older CA) are not offered.
  uint64_t generation() const { return watched_.reloads(); }
  uint64_t reload_failures() const { return watched_.reload_failures(); }
  const TlsClientFiles& files() const { return files_; }
  // The client certificate of the context in use (empty without one): for the expiry metric.
  const std::vector<TlsCertificateInfo>& certificates() const { return certificates_; }

 private:
  explicit TlsClientContext(TlsClientFiles files);
  Result<SslCtxHandle> make() const;

  // Sets ctx_ and what certificates() says of it.
  void use(SslCtxHandle ctx);

  const TlsClientFiles files_;
  SslCtxHandle ctx_;
  std::vector<TlsCertificateInfo> certificates_;
  WatchedFiles watched_;  // the CA, the certificate and the key
};

// The last session an endpoint gave us, offered on the next connection to it (resumption saves
// the certificate exchange and verification). One per worker and endpoint; shared with the
// connections under way, which store the session the server sends them.
class TlsSessionSlot {
 public:
  TlsSessionSlot() = default;
  ~TlsSessionSlot();
  TlsSessionSlot(const TlsSessionSlot&) = delete;
  TlsSessionSlot& operator=(const TlsSessionSlot&) = delete;

  // Takes ownership of `session` (a reference), made under context generation `generation`.
  void store(SSL_SESSION* session, uint64_t generation);
  // The session to offer under `generation`, or null (not owned).
  SSL_SESSION* get(uint64_t generation) const;
  void clear();

 private:
  SSL_SESSION* session_ = nullptr;
  uint64_t generation_ = 0;
};

// How a client connection checks its server.
struct TlsPeerCheck {
  std::string sni;  // server name sent (DNS names only); "" sends none
  // The certificate must carry one of these (any one): DNS names (the certificate's wildcards
  // match), IP addresses (IP SANs) or URIs such as SPIFFE IDs (exact). Empty: the chain only.
  std::vector<std::string> names;
  std::string alpn;  // the protocol the server must select; "" = none required
  // Where resumable sessions go and which to offer; null: no resumption.
  std::shared_ptr<TlsSessionSlot> sessions;
  uint64_t generation = 0;                // TlsClientContext::generation() of the context used
  TlsClientCounters* counters = nullptr;  // counted when the handshake ends; may be null
};

// Whether connections of `ctx` verify the peer's chain (false only for make_client_ssl_ctx with
// verify = false).
bool verifies_peer(SSL_CTX* ctx);

// Whether `cert` carries one of `names` (see TlsPeerCheck::names). On a mismatch, *why says what
// the certificate does carry.
bool check_peer_names(X509* cert, const std::vector<std::string>& names, std::string* why);

}  // namespace h2mesh::net
