// The kubeconfig reader (YAML text; relative paths resolved against a base directory, nothing
// read from disk) and the pieces it uses: server URLs and base64.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "discovery/k8s_credentials.h"

namespace k8s = h2mesh::discovery::k8s;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto creds = k8s::parse_kubeconfig(text, "/nonexistent/kube");
  if (creds) {
    // A usable result names where to connect.
    if (creds->host.empty() || creds->port == 0) abort();
    if (!creds->ca.path.empty() && creds->ca.path[0] != '/') abort();
  } else if (creds.error().message.empty()) {
    abort();
  }

  // The same bytes as a server URL and as base64 (the kubeconfig's *-data fields).
  if (auto url = k8s::parse_server_url(text)) {
    if (url->host.empty() || url->port == 0) abort();
    if (url->host.find('/') != std::string::npos) abort();
  }
  if (auto decoded = k8s::base64_decode(text)) {
    if (decoded->size() > size * 3 / 4 + 3) abort();
  }
  return 0;
}
