#pragma once

// Reader of the `mesh.tls` map (mTLS between sidecars). Internal to config/: parser.cc and the
// config tests include it. It reports every problem to `diag` and writes only valid values. The
// files are not opened here: the sidecar loads them at start (and reloads them as they change).

#include "config/config.h"
#include "config/yaml_reader.h"

namespace h2mesh::config {

void read_mesh_tls(const Located& value, MeshTls* tls, Diagnostics* diag);

// Checks of a MeshTls however it was made (file, flags or environment): "" when consistent,
// else what is wrong.
std::string check_mesh_tls(const MeshTls& tls);

// "permissive" / "strict" → the mode; false for anything else.
bool parse_mtls_mode(const std::string& text, MeshTls::Mode* mode);

}  // namespace h2mesh::config
