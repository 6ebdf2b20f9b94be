#include "config/mesh_tls_reader.h"

#include "config/discovery_reader.h"

namespace h2mesh::config {
namespace {

void read_path(const Located& value, std::string* field, Diagnostics* diag) {
  auto text = read_string(value, diag, /*allow_empty=*/true);
  if (!text) return;
  if (text->empty() || text->starts_with('~') || text->starts_with('$')) {
    diag->add(value.mark,
              value.path + (text->empty() ? ": must not be empty" : ": '" + *text + "' is not expanded"),
              "write the full path of a PEM file, e.g. /var/run/h2mesh/tls/tls.crt");
    return;
  }
  *field = *text;
}

}  // namespace

bool parse_mtls_mode(const std::string& text, MeshTls::Mode* mode) {
  if (text == "permissive") {
    *mode = MeshTls::Mode::Permissive;
  } else if (text == "strict") {
    *mode = MeshTls::Mode::Strict;
  } else {
    return false;
  }
  return true;
}

std::string check_mesh_tls(const MeshTls& tls) {
  // Mutual: the certificate proves this pod to its peers, the CA checks theirs. One without the
  // others cannot work either way.
  if (tls.cert.empty() || tls.key.empty() || tls.ca.empty())
    return "mesh mTLS needs the pod's certificate, its key and the mesh CA (cert, key and ca; "
           "H2MESH_MESH_CERT, H2MESH_MESH_KEY and H2MESH_MESH_CA)";
  return "";
}

void read_mesh_tls(const Located& value, MeshTls* tls, Diagnostics* diag) {
  MapReader map(value, {"cert", "key", "ca", "mode", "trust_domain", "allowed_identities"}, diag);
  if (!map.ok()) return;
  const char* files_hint = "mesh mTLS is mutual: give cert, key and ca";
  if (auto v = map.require("cert", files_hint)) read_path(*v, &tls->cert, diag);
  if (auto v = map.require("key", files_hint)) read_path(*v, &tls->key, diag);
  if (auto v = map.require("ca", files_hint)) read_path(*v, &tls->ca, diag);
  if (auto v = map.get("mode")) {
    if (auto i = read_choice(*v, {"permissive", "strict"}, diag))
      tls->mode = *i == 0 ? MeshTls::Mode::Permissive : MeshTls::Mode::Strict;
  }
  if (auto v = map.get("trust_domain")) {
    if (auto text = read_string(*v, diag)) {
      std::string error, hint;
      if (check_dns_name(*text, &error, &hint)) {
        tls->trust_domain = *text;
      } else {
        diag->add(v->mark, v->path + ": " + error, "e.g. cluster.local");
      }
    }
  }
  if (auto v = map.get("allowed_identities")) {
    if (auto items = read_sequence(*v, diag)) {
      for (const Located& item : *items) {
        auto text = read_string(item, diag);
        if (text) tls->allowed_identities.push_back(*text);
      }
    }
  }
}

}  // namespace h2mesh::config
