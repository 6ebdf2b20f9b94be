#pragma once

// A server-side TLS context made from a certificate chain and a private key in PEM files, for
// listeners that terminate TLS (the admission webhook today; listener TLS later). TLS 1.2 and
// 1.3 only, forward-secret AEAD ciphers for 1.2 (1.3's are all that), no renegotiation, no
// compression, and ALPN chosen from the protocols the owner offers.
//
// The files are watched: Kubernetes updates a mounted Secret by swapping a symlink to a new
// directory, so certificates rotate without a restart. current() looks at the files (stat,
// symlinks followed) at most once per check interval and makes a new context when they changed.
// A pair that does not load (a missing file, a key that does not match, a half-written file)
// keeps the context in use and is logged once; the next change is tried again. Connections keep
// the context they started with (OpenSSL counts its references), so a reload never disturbs them.

#include <openssl/ssl.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/time.h"

namespace h2mesh::net {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const;
};
using SslCtxHandle = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

struct TlsServerSettings {
  std::string cert_file;  // PEM: the leaf first, then its intermediates
  std::string key_file;   // PEM: the leaf's private key (unencrypted)
  // ALPN, in order of preference; a client offering none of them still connects (no ALPN).
  std::vector<std::string> alpn;
  Duration check_interval = std::chrono::seconds(1);
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

  // For /metrics and tests.
  uint64_t reloads() const { return reloads_; }
  uint64_t reload_failures() const { return reload_failures_; }

 private:
  // What stat says about both files; a change in any field means "load again".
  struct Stamp {
    dev_t cert_dev = 0, key_dev = 0;
    ino_t cert_ino = 0, key_ino = 0;
    off_t cert_size = 0, key_size = 0;
    timespec cert_mtime{}, key_mtime{};
    bool operator==(const Stamp& o) const;
  };

  explicit TlsContext(TlsServerSettings settings);
  Result<Stamp> stamp() const;
  Result<SslCtxHandle> make() const;

  const TlsServerSettings settings_;
  std::string alpn_wire_;  // settings_.alpn in ALPN's wire format (length-prefixed names)
  SslCtxHandle ctx_;
  Stamp loaded_;  // the files ctx_ was made from
  Stamp failed_;  // the last files that did not load (logged once)
  bool have_failed_ = false;
  std::string logged_failure_;  // the last reload error logged ("" after a success)
  TimePoint checked_{};
  uint64_t reloads_ = 0;
  uint64_t reload_failures_ = 0;
};

// The oldest queued OpenSSL error as text, or `fallback` when there is none; clears the queue.
// Only after openssl() loaded the library.
std::string openssl_error_text(const std::string& fallback);

}  // namespace h2mesh::net
