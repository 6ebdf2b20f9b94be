#pragma once

// Reader of the `access_log` map. Internal to config/: parser.cc and the config tests include it.
// It reports every problem to `diag` and writes only valid values. The file is not opened here:
// `h2mesh run` opens it at start (and again on SIGUSR1), `h2mesh check` checks it can be.

#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace h2mesh::config {

void read_access_log(const Located& value, AccessLog* log, Diagnostics* diag);

// Every name `access_log.fields` accepts, in the order of a line with all of them: "time", the
// names of H2MESH_CALL_FIELDS, "trace_id".
const std::vector<std::string_view>& access_log_field_names();

}  // namespace h2mesh::config
