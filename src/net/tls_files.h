#pragma once

// Checks of TLS files for `h2mesh check` (and anything else that wants to say what is wrong with
// a certificate before serving it): the file exists and parses, a key matches its certificate,
// and the certificates are valid now. Blocking reads of small files; any thread.

#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace h2mesh::net
