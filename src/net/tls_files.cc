#include "net/tls_files.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "net/openssl_api.h"
#include "net/tls_context.h"

namespace h2mesh::net {
namespace {

bool read_file(const std::string& path, std::string* out, std::vector<TlsFileProblem>* problems) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    problems->push_back({true, path + ": cannot be read"});
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

std::string utc(int64_t unix_time) {
  const time_t t = static_cast<time_t>(unix_time);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Every PEM certificate of `pem`, in order (the caller frees them).
std::vector<X509*> read_certificates(const std::string& pem) {
  std::vector<X509*> out;
  BIO* bio = S().BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) return out;
  while (X509* cert = S().PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out.push_back(cert);
  S().BIO_free(bio);
  S().ERR_clear_error();  // the end of the input is queued as an error
  return out;
}

// Expired or not yet valid: an error; expiring within a week: a warning.
void check_validity(X509* cert, const std::string& what, int64_t now, bool expired_is_error,
                    std::vector<TlsFileProblem>* problems) {
  const int64_t not_after = asn1_time_to_unix(S().X509_get0_notAfter(cert));
  const int64_t not_before = asn1_time_to_unix(S().X509_get0_notBefore(cert));
  if (not_after < now) {
    problems->push_back({expired_is_error, what + " expired at " + utc(not_after)});
  } else if (not_before > now) {
    problems->push_back({true, what + " is not valid before " + utc(not_before)});
  } else if (not_after - now < kExpiryWarningSeconds) {
    problems->push_back({false, what + " expires at " + utc(not_after) + " (within 7 days)"});
  }
}

}  // namespace

std::vector<TlsFileProblem> check_certificate_pair(const std::string& cert_file,
                                                   const std::string& key_file, int64_t now) {
  std::vector<TlsFileProblem> problems;
  std::string why;
  if (!openssl(&why)) return {{true, why}};
  std::string cert_pem, key_pem;
  const bool have_cert = read_file(cert_file, &cert_pem, &problems);
  const bool have_key = read_file(key_file, &key_pem, &problems);
  std::vector<X509*> chain;
  if (have_cert) {
    chain = read_certificates(cert_pem);
    if (chain.empty()) problems.push_back({true, cert_file + ": no PEM certificate in it"});
  }
  EVP_PKEY* key = nullptr;
  if (have_key) {
    BIO* bio = S().BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
    if (bio) {
      key = S().PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
      S().BIO_free(bio);
    }
    if (!key) {
      problems.push_back({true, key_file + ": no unencrypted PEM private key in it (" +
                                    openssl_error_text("unreadable") + ")"});
    }
  }
  if (!chain.empty() && key && S().X509_check_private_key(chain.front(), key) != 1) {
    problems.push_back({true, key_file + ": does not match the certificate " + cert_file});
  }
  S().ERR_clear_error();
  for (size_t i = 0; i < chain.size(); ++i) {
    check_validity(chain[i],
                   i == 0 ? cert_file + ": the certificate"
                          : cert_file + ": chain certificate " + std::to_string(i + 1),
                   now, true, &problems);
  }
  for (X509* c : chain) S().X509_free(c);
  if (key) S().EVP_PKEY_free(key);
  return problems;
}

std::vector<TlsFileProblem> check_ca_bundle(const std::string& ca_file, int64_t now) {
  std::vector<TlsFileProblem> problems;
  std::string why;
  if (!openssl(&why)) return {{true, why}};
  std::string pem;
  if (!read_file(ca_file, &pem, &problems)) return problems;
  std::vector<X509*> certs = read_certificates(pem);
  if (certs.empty()) problems.push_back({true, ca_file + ": no PEM certificate in it"});
  // One expired CA among others is a warning (bundles carry old roots); all of them is an error.
  size_t expired = 0;
  for (size_t i = 0; i < certs.size(); ++i) {
    if (asn1_time_to_unix(S().X509_get0_notAfter(certs[i])) < now) ++expired;
    check_validity(certs[i], ca_file + ": CA certificate " + std::to_string(i + 1), now,
                   certs.size() == 1, &problems);
  }
  if (certs.size() > 1 && expired == certs.size())
    problems.push_back({true, ca_file + ": every CA certificate in it has expired"});
  for (X509* c : certs) S().X509_free(c);
  return problems;
}

WatchedFiles::WatchedFiles(std::vector<std::string> paths, Duration check_interval,
                           std::string what, std::string kept)
    : paths_(std::move(paths)),
      check_interval_(check_interval),
      what_(std::move(what)),
      kept_(std::move(kept)) {}

bool WatchedFiles::FileStamp::operator==(const FileStamp& o) const {
  return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
         mtime.tv_nsec == o.mtime.tv_nsec;
}

Result<WatchedFiles::Stamps> WatchedFiles::stamp() const {
  Stamps stamps;
  for (const std::string& path : paths_) {
    FileStamp s;
    if (!path.empty()) {
      struct stat st {};
      // stat, not lstat: a Secret volume's files are symlinks into a directory that is swapped.
      if (::stat(path.c_str(), &st) != 0)
        return tls_error("cannot read " + path + ": " + strerror(errno));
      s = FileStamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    }
    stamps.push_back(s);
  }
  return stamps;
}

Result<void> WatchedFiles::start() {
  auto st = stamp();
  if (!st) return st.error();
  loaded_ = std::move(*st);
  return {};
}

bool WatchedFiles::look(const std::function<Result<void>()>& reload) {
  auto st = stamp();
  if (st && *st == loaded_) return false;
  if (st && have_failed_ && *st == failed_) return false;  // logged already
  Result<void> made = st ? reload() : Result<void>(st.error());
  if (!made) {
    ++reload_failures_;
    // A file missing for a moment (stat failed) is tried again at the next look; a set that
    // does not load is remembered so that it is logged once.
    if (st) {
      failed_ = *st;
      have_failed_ = true;
    }
    if (made.error().message != logged_failure_) {
      logged_failure_ = made.error().message;
      LOG_WARN("tls: %s changed but do not load (%s); %s", what_.c_str(), logged_failure_.c_str(),
               kept_.c_str());
    }
    return false;
  }
  loaded_ = std::move(*st);
  have_failed_ = false;
  logged_failure_.clear();
  ++reloads_;
  return true;
}

}  // namespace h2mesh::net
