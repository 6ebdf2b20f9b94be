#pragma once

// Where the Kubernetes API server is and how to prove who we are: in-cluster service-account
// credentials or a kubeconfig file. Reading these small files is the only blocking I/O of
// Kubernetes discovery (at start and before each connection).

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/time.h"
#include "config/config.h"

namespace h2mesh::discovery::k8s {

// The directory of the in-cluster token, CA and namespace files; the environment variable
// H2MESH_SERVICEACCOUNT_DIR overrides it (tests).
inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

// PEM text given inline (kubeconfig *-data, base64-decoded) or as a file read when needed.
struct PemSource {
  std::string path;
  std::string data;
  bool empty() const { return path.empty() && data.empty(); }
};

struct Credentials {
  std::string server;  // "https://host:port" (or "http://..."), for messages
  std::string host;    // IP literal (IPv6 without brackets) or DNS name
  uint16_t port = 443;
  // An http:// server (kubectl proxy beside the sidecar): plain TCP, no TLS; the CA and client
  // certificate fields are not used.
  bool plain_http = false;
  PemSource ca;  // empty: the system's CA store
  PemSource client_cert;
  PemSource client_key;
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;  // kubeconfig tls-server-name: verified instead of `host`
  std::string token;            // a fixed bearer token ...
  std::string token_file;       // ... or a file re-read as it rotates
  std::string namespace_;       // the context's or the pod's namespace; may be empty
  std::string origin;           // e.g. "kubeconfig /home/me/.kube/config (context kind-dev)"
};

// "https://host[:port]" or "http://host[:port]" (default ports 443 and 80), with an optional path
// (ignored only when it is "/"); IPv6 in brackets.
Result<Credentials> parse_server_url(std::string_view url);

// A kubeconfig's current context. Relative file paths are relative to `base_dir`, the
// kubeconfig's directory, as kubectl does.
Result<Credentials> parse_kubeconfig(std::string_view yaml, const std::string& base_dir);
Result<Credentials> load_kubeconfig(const std::string& path);

// In-cluster credentials from KUBERNETES_SERVICE_HOST/PORT (passed in; empty: not in a cluster)
// and the token, ca.crt and namespace files of `dir`.
Result<Credentials> in_cluster_credentials(const std::string& service_host,
                                           const std::string& service_port, const std::string& dir);

// The kubeconfig of `settings` when given, else in-cluster credentials from the environment.
Result<Credentials> load_credentials(const config::KubernetesDiscovery& settings);
// The same from a kubeconfig path ("": in-cluster).
Result<Credentials> load_credentials(const std::string& kubeconfig);

// Base64 (standard alphabet, padding optional, whitespace ignored).
Result<std::string> base64_decode(std::string_view text);

// Small whole-file read (credential files).
Result<std::string> read_small_file(const std::string& path);

// The bearer token for the next request. A token file (a projected service-account token that
// the kubelet rewrites at 80% of its lifetime) is read again when it changed on disk or
// `max_age` passed since the last read, and after invalidate() (a 401).
class TokenSource {
 public:
  TokenSource(std::string token, std::string path, Duration max_age = std::chrono::seconds(60))
      : token_(std::move(token)), path_(std::move(path)), max_age_(max_age) {}

  // Main thread, before each request. "" when the credentials carry no token (client
  // certificates). An error names the file that could not be read.
  Result<std::string> get(TimePoint now);
  void invalidate() { read_at_.reset(); }
  uint64_t reads() const { return reads_; }
  const std::string& path() const { return path_; }

 private:
  struct FileStamp {
    ino_t inode = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };

  std::string token_;
  std::string path_;
  Duration max_age_;
  std::optional<TimePoint> read_at_;
  FileStamp stamp_;
  uint64_t reads_ = 0;
};

}  // namespace h2mesh::discovery::k8s
