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

// access_log.path as written: "stdout" or a file. Empty when it is acceptable, else why not
// ("must not be empty", "'~/x' is not expanded"). Whether the file can be opened is not checked
// here (see above). `run --mesh --access-log` reads it here too.
std::string check_access_log_path_text(std::string_view path);

// access_log.format: "json" or "text". False for anything else.
bool parse_access_log_format(std::string_view text, AccessLog::Format* format);

}  // namespace h2mesh::config
