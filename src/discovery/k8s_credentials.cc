#include "discovery/k8s_credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "config/yaml_guard.h"

namespace h2mesh::discovery::k8s {
namespace {

constexpr size_t kMaxCredentialFile = 4 << 20;

Error bad(std::string message) {
  return make_error(ErrorCode::InvalidArgument, std::move(message));
}

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return base_dir + "/" + path;
}

std::string scalar(const YAML::Node& map, const char* key) {
  YAML::Node n = map[key];
  return n && n.IsScalar() ? n.Scalar() : std::string();
}

// The `field` map of the entry of `list` named `name` (kubeconfig's named lists).
YAML::Node named(const YAML::Node& root, const char* list, const char* field,
                 const std::string& name) {
  YAML::Node items = root[list];
  if (!items || !items.IsSequence()) return YAML::Node();
  for (const auto& item : items)
    if (item.IsMap() && scalar(item, "name") == name) return item[field];
  return YAML::Node();
}

// certificate-authority-data (base64) wins over certificate-authority (a path), as in kubectl.
Result<PemSource> pem_field(const YAML::Node& map, const char* path_key, const char* data_key,
                            const std::string& base_dir) {
  PemSource out;
  std::string data = scalar(map, data_key);
  if (!data.empty()) {
    auto decoded = base64_decode(data);
    if (!decoded) return bad(std::string(data_key) + ": " + decoded.error().message);
    out.data = std::move(*decoded);
  } else {
    out.path = resolve(base_dir, scalar(map, path_key));
  }
  return out;
}

Result<Credentials> parse_kubeconfig_node(const YAML::Node& root, const std::string& base_dir) {
  if (!root.IsMap()) return bad("not a kubeconfig (no top-level map)");
  std::string context_name = scalar(root, "current-context");
  if (context_name.empty()) {
    YAML::Node contexts = root["contexts"];
    if (!contexts || !contexts.IsSequence() || contexts.size() != 1)
      return bad("current-context is not set");
    context_name = scalar(contexts[0], "name");
  }
  YAML::Node context = named(root, "contexts", "context", context_name);
  if (!context || !context.IsMap()) return bad("context \"" + context_name + "\" not found");
  std::string cluster_name = scalar(context, "cluster");
  YAML::Node cluster = named(root, "clusters", "cluster", cluster_name);
  if (!cluster || !cluster.IsMap())
    return bad("cluster \"" + cluster_name + "\" of context \"" + context_name + "\" not found");

  auto creds = parse_server_url(scalar(cluster, "server"));
  if (!creds) return bad("cluster \"" + cluster_name + "\": " + creds.error().message);
  creds->namespace_ = scalar(context, "namespace");
  creds->tls_server_name = scalar(cluster, "tls-server-name");
  creds->insecure_skip_tls_verify = scalar(cluster, "insecure-skip-tls-verify") == "true";
  auto ca = pem_field(cluster, "certificate-authority", "certificate-authority-data", base_dir);
  if (!ca) return bad("cluster \"" + cluster_name + "\": " + ca.error().message);
  creds->ca = std::move(*ca);

  std::string user_name = scalar(context, "user");
  YAML::Node user = named(root, "users", "user", user_name);
  if (!user_name.empty() && (!user || !user.IsMap()))
    return bad("user \"" + user_name + "\" of context \"" + context_name + "\" not found");
  if (user && user.IsMap()) {
    if (user["exec"] || user["auth-provider"])
      return bad("user \"" + user_name +
                 "\": exec and auth-provider plugins are not supported; use a token or a client "
                 "certificate (e.g. a service account token)");
    creds->token = scalar(user, "token");
    creds->token_file = resolve(base_dir, scalar(user, "tokenFile"));
    auto cert = pem_field(user, "client-certificate", "client-certificate-data", base_dir);
    if (!cert) return bad("user \"" + user_name + "\": " + cert.error().message);
    auto key = pem_field(user, "client-key", "client-key-data", base_dir);
    if (!key) return bad("user \"" + user_name + "\": " + key.error().message);
    creds->client_cert = std::move(*cert);
    creds->client_key = std::move(*key);
    if (creds->client_cert.empty() != creds->client_key.empty())
      return bad("user \"" + user_name + "\": a client certificate needs its key and vice versa");
  }
  creds->origin = "context " + context_name;
  return creds;
}

}  // namespace

Result<std::string> read_small_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::Io, path + ": " + strerror(errno));
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string msg = path + ": " + strerror(errno);
      close(fd);
      return make_error(ErrorCode::Io, msg);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxCredentialFile) {
      close(fd);
      return make_error(ErrorCode::Io, path + ": larger than 4 MiB");
    }
  }
  close(fd);
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    int v = value(c);
    if (v < 0 || padding) return bad("invalid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits >= 6) return bad("invalid base64 length");
  return out;
}

Result<Credentials> parse_server_url(std::string_view url) {
  constexpr std::string_view kHttps = "https://";
  constexpr std::string_view kHttp = "http://";
  Credentials c;
  std::string_view rest;
  if (url.substr(0, kHttps.size()) == kHttps) {
    rest = url.substr(kHttps.size());
  } else if (url.substr(0, kHttp.size()) == kHttp) {
    // kubectl proxy (or another authenticating proxy) beside h2mesh, on a trusted hop.
    rest = url.substr(kHttp.size());
    c.plain_http = true;
    c.port = 80;
  } else {
    return bad("server \"" + std::string(url) + "\" is not an https:// or http:// URL");
  }
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    if (rest.substr(slash) != "/")
      return bad("server \"" + std::string(url) + "\" has a path, which is not supported");
    rest = rest.substr(0, slash);
  }
  std::string_view port_text;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos)
      return bad("server \"" + std::string(url) + "\": bad IPv6 address");
    c.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest[0] != ':')
      return bad("server \"" + std::string(url) + "\": bad port");
    if (!rest.empty()) port_text = rest.substr(1);
  } else {
    size_t colon = rest.find(':');
    c.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (c.host.empty()) return bad("server \"" + std::string(url) + "\" has no host");
  if (!port_text.empty()) {
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || p == 0 || p > 65535)
      return bad("server \"" + std::string(url) + "\": bad port");
    c.port = static_cast<uint16_t>(p);
  }
  bool v6 = c.host.find(':') != std::string::npos;
  c.server = (c.plain_http ? "http://" : "https://") + (v6 ? "[" + c.host + "]" : c.host) + ":" +
             std::to_string(c.port);
  return c;
}

Result<Credentials> parse_kubeconfig(std::string_view yaml, const std::string& base_dir) {
  // YAML::Load reads only the first document and cannot loop, but where yaml-cpp cannot go past
  // a token it stops without an error (",apiVersion: v1" reads as an empty document): the text
  // the config reader refuses is refused here too, at that token.
  if (auto trap = config::find_yaml_parser_trap(yaml))
    return bad("not valid YAML: line " + std::to_string(trap->line) + ", column " +
               std::to_string(trap->column) + ": " + trap->message + " (" + trap->hint + ")");
  try {
    return parse_kubeconfig_node(YAML::Load(std::string(yaml)), base_dir);
  } catch (const YAML::Exception& e) {
    return bad(std::string("not valid YAML: ") + e.what());
  }
}

Result<Credentials> load_kubeconfig(const std::string& path) {
  auto text = read_small_file(path);
  if (!text) return make_error(ErrorCode::Io, "cannot read kubeconfig " + text.error().message);
  auto creds = parse_kubeconfig(*text, dir_of(path));
  if (!creds) return bad("kubeconfig " + path + ": " + creds.error().message);
  creds->origin = "kubeconfig " + path + " (" + creds->origin + ")";
  return creds;
}

Result<Credentials> in_cluster_credentials(const std::string& service_host,
                                           const std::string& service_port,
                                           const std::string& dir) {
  if (service_host.empty() || service_port.empty())
    return bad(
        "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset) and no kubeconfig "
        "given");
  bool v6 = service_host.find(':') != std::string::npos;
  auto creds = parse_server_url("https://" + (v6 ? "[" + service_host + "]" : service_host) + ":" +
                                service_port);
  if (!creds) return bad("KUBERNETES_SERVICE_HOST/PORT: " + creds.error().message);
  creds->token_file = dir + "/token";
  creds->ca.path = dir + "/ca.crt";
  // The pod's namespace; optional when the config names one.
  if (auto ns = read_small_file(dir + "/namespace")) creds->namespace_ = trim(*ns);
  creds->origin = "in-cluster service account " + dir;
  return creds;
}

Result<Credentials> load_credentials(const config::KubernetesDiscovery& settings) {
  return load_credentials(settings.kubeconfig);
}

Result<Credentials> load_credentials(const std::string& kubeconfig) {
  if (!kubeconfig.empty()) return load_kubeconfig(kubeconfig);
  auto env = [](const char* name) {
    const char* v = getenv(name);
    return v ? std::string(v) : std::string();
  };
  std::string dir = env("H2MESH_SERVICEACCOUNT_DIR");
  return in_cluster_credentials(env("KUBERNETES_SERVICE_HOST"), env("KUBERNETES_SERVICE_PORT"),
                                dir.empty() ? kServiceAccountDir : dir);
}

Result<std::string> TokenSource::get(TimePoint now) {
  if (path_.empty()) return token_;
  struct stat st {};
  FileStamp stamp;
  if (stat(path_.c_str(), &st) == 0) {
    stamp = FileStamp{st.st_ino, st.st_size,
                      int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
  }
  // Kubelet swaps the projected volume's files through a symlink: the inode changes too.
  bool fresh = read_at_ && now - *read_at_ < max_age_ && stamp == stamp_;
  if (fresh) return token_;
  auto text = read_small_file(path_);
  if (!text) return make_error(ErrorCode::Io, "cannot read the token " + text.error().message);
  std::string token = trim(*text);
  if (token.empty()) return make_error(ErrorCode::Io, "the token file " + path_ + " is empty");
  token_ = std::move(token);
  stamp_ = stamp;
  read_at_ = now;
  ++reads_;
  return token_;
}

}  // namespace h2mesh::discovery::k8s
