#pragma once

// `h2mesh run --mesh`: the command line's (and environment's) mesh settings, applied on top of
// the config file's mesh block, or of the defaults when there is no file.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace h2mesh::config {

struct MeshFlags {
  std::optional<std::string> kubeconfig;               // --kubeconfig PATH
  std::optional<std::vector<std::string>> namespaces;  // --namespaces a,b
  std::optional<uint16_t> outbound_port;               // --outbound-port PORT
  std::optional<SocketAddress> admin;                  // --admin ADDRESS
  std::optional<std::vector<uint16_t>> opaque_ports;   // --opaque-ports P,P (mesh.opaque_ports)
  std::optional<uint16_t> inbound_port;                // --inbound-port PORT
  // Mesh mTLS: --mesh-cert, --mesh-key, --mesh-ca (files), --mtls-mode permissive|strict.
  std::optional<std::string> mesh_cert, mesh_key, mesh_ca;
  std::optional<MeshTls::Mode> mtls_mode;
  // Observability without a config file (docs/observability.md, "In the mesh"). Each changes
  // what it names in the file's tracing or access_log block, or makes the block.
  std::optional<std::string> otlp_endpoint;               // --otlp-endpoint URL: tracing on
  std::optional<double> trace_sample_ratio;               // --trace-sample-ratio R
  std::optional<std::string> access_log;                  // --access-log stdout|PATH|off
  std::optional<AccessLog::Format> access_log_format;     // --access-log-format json|text
};

// Reads the flags above from `flags` (name → value), each value checked by the parser the
// config file's key goes through. Returns false with a message naming the flag when a value is
// malformed.
bool parse_mesh_flags(const std::map<std::string, std::string>& flags, MeshFlags* out,
                      std::string* error);

// Turns mesh mode on in `config` and applies the flags. False, with a message, when the result
// is inconsistent (the outbound or inbound port is the admin port or a listener's, mesh mTLS
// without all three of its files, a sample ratio or format for tracing or an access log that
// is off).
bool apply_mesh_flags(const MeshFlags& flags, Config* config, std::string* error);

}  // namespace h2mesh::config
