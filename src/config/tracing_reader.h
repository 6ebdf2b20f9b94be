#pragma once

// Reader of the `tracing:` block (distributed tracing, observe/). Internal to config/: parser.cc
// and the config tests include it. It reports every problem to `diag` and writes only valid values.

#include <string>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace h2mesh::config {

void read_tracing(const Located& value, Tracing* tracing, Diagnostics* diag);

// Splits "http://host:port/path" into tracing's host, port and path. The port defaults to 4318
// (OTLP/HTTP's) and the path to /v1/traces. False with *error set when it is not such a URL.
bool parse_otlp_endpoint(const std::string& url, Tracing* tracing, std::string* error);

}  // namespace h2mesh::config
