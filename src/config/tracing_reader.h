#pragma once

// Reader of the `tracing:` block (distributed tracing, observe/). Internal to config/: parser.cc
// and the config tests include it. It reports every problem to `diag` and writes only valid values.

#include <string>
#include <string_view>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace h2mesh::config {

void read_tracing(const Located& value, Tracing* tracing, Diagnostics* diag);

// Splits "http://host:port/path" into tracing's host, port and path. The port defaults to 4318
// (OTLP/HTTP's) and the path to /v1/traces. False with *error set when it is not such a URL.
bool parse_otlp_endpoint(const std::string& url, Tracing* tracing, std::string* error);

// A share of new traces (tracing.sample_ratio; also access_log.sample_ratio's range): a plain
// decimal number from 0 to 1, "0.25". False with *error set otherwise. `run --mesh`'s flags and
// the injector's annotations read it here, so they accept exactly what the config file does.
bool parse_sample_ratio(std::string_view text, double* ratio, std::string* error);

}  // namespace h2mesh::config
