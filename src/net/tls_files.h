#pragma once

// TLS files: checks for `h2mesh check` (and anything else that wants to say what is wrong with
// a certificate before serving it): the file exists and parses, a key matches its certificate,
// and the certificates are valid now (blocking reads of small files; any thread); and the watch
// that reloads a context when its files change (WatchedFiles).

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/time.h"

namespace h2mesh::net {

struct TlsFileProblem {
  bool error = true;    // false: a warning (expires soon)
  std::string message;  // names the file
};

// Warn when a certificate expires within this long.
constexpr int64_t kExpiryWarningSeconds = 7 * 24 * 3600;

// A certificate chain (PEM, leaf first) and the leaf's private key (PEM). `now`: Unix time.
std::vector<TlsFileProblem> check_certificate_pair(const std::string& cert_file,
                                                   const std::string& key_file, int64_t now);
// A CA bundle (PEM, one or more certificates).
std::vector<TlsFileProblem> check_ca_bundle(const std::string& ca_file, int64_t now);

// The files a TLS context is made from, watched for a change: Kubernetes updates a mounted
// Secret by swapping a symlink to a new directory, so what stat says of each file (symlinks
// followed: device, inode, size, modification time) is compared with what it said when the
// context in use was made. TlsContext (server) and TlsClientContext own one each. A set that
// changed but does not load keeps the context in use and is logged once; the next change is
// tried again. Used on one thread.
class WatchedFiles {
 public:
  // `paths` may hold "" (a file not used, never looked at). The log line of a set that does not
  // load reads "tls: <what> changed but do not load (<why>); <kept>".
  WatchedFiles(std::vector<std::string> paths, Duration check_interval, std::string what,
               std::string kept);

  // At start, once the first context was made: these files are the ones in use. An error names
  // a file that cannot be read.
  Result<void> start();
  // At most once per check interval (the last look was before `now` - interval): when the files
  // changed since the context in use was made, and are not the set that failed last time,
  // `reload()` makes a new context and puts it in use, or says why it cannot. True when it did.
  template <typename Reload>
  bool check(TimePoint now, Reload&& reload) {
    if (now - checked_ < check_interval_) return false;
    checked_ = now;
    return look(std::function<Result<void>()>(std::forward<Reload>(reload)));
  }

  uint64_t reloads() const { return reloads_; }
  uint64_t reload_failures() const { return reload_failures_; }

 private:
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    bool operator==(const FileStamp& o) const;
  };
  using Stamps = std::vector<FileStamp>;

  Result<Stamps> stamp() const;
  bool look(const std::function<Result<void>()>& reload);

  const std::vector<std::string> paths_;
  const Duration check_interval_;
  const std::string what_, kept_;
  Stamps loaded_;  // the files the context in use was made from
  Stamps failed_;  // the last set that did not load (logged once)
  bool have_failed_ = false;
  std::string logged_failure_;  // the last reload error logged ("" after a success)
  TimePoint checked_{};
  uint64_t reloads_ = 0;
  uint64_t reload_failures_ = 0;
};

}  // namespace h2mesh::net
