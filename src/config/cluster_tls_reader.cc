#include "config/cluster_tls_reader.h"

#include <arpa/inet.h>

#include "config/discovery_reader.h"

namespace h2mesh::config {
namespace {

bool is_ip_literal(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

// A file path as the other path keys take it: written out in full, as the process sees it.
void read_path(const Located& value, std::string* field, Diagnostics* diag) {
  auto text = read_string(value, diag, /*allow_empty=*/true);
  if (!text) return;
  if (text->empty()) {
    diag->add(value.mark, value.path + ": must not be empty",
              "write the path of a PEM file, e.g. /etc/h2mesh/tls/ca.crt");
    return;
  }
  if (text->starts_with('~') || text->starts_with('$')) {
    diag->add(value.mark, value.path + ": '" + *text + "' is not expanded",
              "write the full path, e.g. /etc/h2mesh/tls/ca.crt; '~' and environment variables "
              "are not expanded");
    return;
  }
  *field = *text;
}

void read_server_name(const Located& value, std::string* field, Diagnostics* diag) {
  auto text = read_string(value, diag, /*allow_empty=*/true);
  if (!text) return;
  if (is_ip_literal(*text)) {
    diag->add(value.mark, value.path + ": '" + *text + "' is an IP address",
              "SNI carries host names only; leave server_name out and the endpoint's IP address "
              "is verified, or list the address under 'san'");
    return;
  }
  std::string error, hint;
  if (text->empty()) {
    error = "must not be empty";
    hint = "write the name the backends' certificates carry, e.g. greeter.internal";
  } else if (check_dns_name(*text, &error, &hint)) {
    *field = *text;
    return;
  }
  diag->add(value.mark, value.path + ": " + error, hint);
}

// One expected name: a URI (scheme://...), an IP address or a DNS name.
void read_san(const Located& value, std::vector<std::string>* sans, Diagnostics* diag) {
  auto text = read_string(value, diag, /*allow_empty=*/true);
  if (!text) return;
  const char* example =
      "write a DNS name (greeter.internal), an IP address or a URI such as "
      "spiffe://cluster.local/ns/grpcdemo/sa/greeter";
  if (text->empty()) {
    diag->add(value.mark, value.path + ": must not be empty", example);
    return;
  }
  if (const size_t scheme = text->find("://"); scheme != std::string::npos) {
    if (scheme == 0 || scheme + 3 == text->size()) {
      diag->add(value.mark, value.path + ": '" + *text + "' is not a complete URI", example);
      return;
    }
    sans->push_back(*text);
    return;
  }
  if (is_ip_literal(*text)) {
    sans->push_back(*text);
    return;
  }
  std::string error, hint;
  // A certificate's DNS SAN may be a wildcard; the expected name is a real host name.
  if (!check_dns_name(*text, &error, &hint)) {
    diag->add(value.mark, value.path + ": " + error, example);
    return;
  }
  sans->push_back(*text);
}

}  // namespace

void read_cluster_tls(const Located& value, ClusterTls* tls, Diagnostics* diag) {
  MapReader map(value, {"ca", "cert", "key", "server_name", "san"}, diag);
  if (!map.ok()) return;
  if (auto ca = map.get("ca")) read_path(*ca, &tls->ca, diag);
  auto cert = map.get("cert");
  auto key = map.get("key");
  if (cert) read_path(*cert, &tls->cert, diag);
  if (key) read_path(*key, &tls->key, diag);
  if (cert && !key) {
    diag->add(map.key_mark("cert"), value.path + ": 'cert' needs 'key'",
              "a client certificate (mTLS) is given with its private key: add key: FILE");
  } else if (key && !cert) {
    diag->add(map.key_mark("key"), value.path + ": 'key' needs 'cert'",
              "add cert: FILE (the client certificate chain, leaf first) or remove 'key'");
  }
  if (auto name = map.get("server_name")) read_server_name(*name, &tls->server_name, diag);
  if (auto san = map.get("san")) {
    if (auto items = read_sequence(*san, diag, "SAN")) {
      for (const Located& item : *items) read_san(item, &tls->san, diag);
    }
  }
}

}  // namespace h2mesh::config
