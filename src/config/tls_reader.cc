#include "config/tls_reader.h"

#include <algorithm>
#include <string>

namespace h2mesh::config {

namespace {

constexpr const char* kPairExample =
    "e.g. tls: { cert: /etc/h2mesh/tls/tls.crt, key: /etc/h2mesh/tls/tls.key }";

std::optional<std::string> read_path(const Located& value, Diagnostics* diag) {
  return read_string(value, diag);  // an empty path is refused there
}

// `cert` and `key` of `map`, both required when either is written (or when `required`).
std::optional<TlsCertificate> read_pair(const MapReader& map, bool required, Diagnostics* diag) {
  auto cert = map.get("cert");
  auto key = map.get("key");
  if (!cert && !key && !required) return std::nullopt;
  TlsCertificate pair;
  bool ok = true;
  if (!cert) {
    map.require("cert", "the certificate chain (PEM, leaf first) that goes with the key");
    ok = false;
  } else if (auto path = read_path(*cert, diag)) {
    pair.cert = *path;
  } else {
    ok = false;
  }
  if (!key) {
    map.require("key", "the private key (PEM) of the certificate");
    ok = false;
  } else if (auto path = read_path(*key, diag)) {
    pair.key = *path;
  } else {
    ok = false;
  }
  if (!ok) return std::nullopt;
  return pair;
}

}  // namespace

void read_listener_tls(const Located& value, std::optional<ListenerTls>* tls, Diagnostics* diag) {
  MapReader map(
      value,
      {"cert", "key", "certificates", "ca", "require_client_cert", "alpn", "allowed_identities"},
      diag);
  if (!map.ok()) return;
  ListenerTls out;
  bool ok = true;

  auto list = map.get("certificates");
  if (list && (map.get("cert") || map.get("key"))) {
    diag->add(map.key_mark(map.get("cert") ? "cert" : "key"),
              value.path + ": give either cert/key or certificates, not both",
              "with several certificates, list the default one first under certificates");
    ok = false;
  } else if (list) {
    if (auto items = read_sequence(*list, diag, "certificate")) {
      for (const Located& item : *items) {
        MapReader pair_map(item, {"cert", "key"}, diag);
        if (!pair_map.ok()) {
          ok = false;
          continue;
        }
        if (auto pair = read_pair(pair_map, true, diag)) {
          out.certificates.push_back(std::move(*pair));
        } else {
          ok = false;
        }
      }
    } else {
      ok = false;
    }
  } else if (!map.get("cert") && !map.get("key")) {
    diag->add(value.mark, value.path + ": a serving certificate is required", kPairExample);
    ok = false;
  } else if (auto pair = read_pair(map, true, diag)) {
    out.certificates.push_back(std::move(*pair));
  } else {
    ok = false;
  }

  if (auto ca = map.get("ca")) {
    if (auto path = read_path(*ca, diag)) {
      out.ca = *path;
    } else {
      ok = false;
    }
  }
  const bool ca_known = !out.ca.empty() || map.get("ca");
  if (auto require = map.get("require_client_cert")) {
    if (auto on = read_bool(*require, diag)) {
      out.require_client_cert = *on;
      if (*on && !ca_known) {
        diag->add(require->mark,
                  require->path + ": requiring a client certificate needs 'ca' to verify it with",
                  "add ca: /path/to/client-ca.crt (PEM bundle of the CAs that sign clients)");
        ok = false;
      }
    } else {
      ok = false;
    }
  }
  if (auto alpn = map.get("alpn")) {
    if (auto items = read_sequence(*alpn, diag, "protocol")) {
      std::vector<std::string> names;
      for (const Located& item : *items) {
        auto name = read_string(item, diag);
        if (!name) {
          ok = false;
          continue;
        }
        if (name->size() > 255) {
          diag->add(item.mark, item.path + ": an ALPN protocol name is at most 255 bytes");
          ok = false;
          continue;
        }
        if (std::find(names.begin(), names.end(), *name) != names.end()) {
          diag->add(item.mark, item.path + ": '" + *name + "' is listed twice");
          ok = false;
          continue;
        }
        names.push_back(*name);
      }
      if (ok && std::find(names.begin(), names.end(), "h2") == names.end()) {
        diag->add(alpn->mark, alpn->path + ": must offer h2",
                  "h2mesh speaks HTTP/2 to its clients; gRPC clients ask for h2");
        ok = false;
      }
      if (ok) out.alpn = std::move(names);
    } else {
      ok = false;
    }
  }
  if (auto allowed = map.get("allowed_identities")) {
    if (!ca_known) {
      diag->add(allowed->mark,
                allowed->path + ": an allow-list of client identities needs 'ca' to verify them",
                "add ca: /path/to/client-ca.crt; identities are read from verified certificates");
      ok = false;
    }
    if (auto items = read_sequence(*allowed, diag, "identity")) {
      for (const Located& item : *items) {
        if (auto id = read_string(item, diag)) {
          out.allowed_identities.push_back(*id);
        } else {
          ok = false;
        }
      }
    } else {
      ok = false;
    }
  }
  if (ok) *tls = std::move(out);
}

}  // namespace h2mesh::config
