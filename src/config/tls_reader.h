#pragma once

// Reader of a listener's `tls` map: serving certificates (one, or several chosen by SNI), client
// certificate verification, ALPN and the allow-list of client identities. Internal to config/:
// only parser.cc and the config tests include this. Like the other readers it runs on the thread
// calling parse_config, reports every problem to `diag` and only sets *tls when all is valid.
// It checks the text only; whether the files exist and load is for `h2mesh check` and start-up.

#include <optional>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace h2mesh::config {

void read_listener_tls(const Located& value, std::optional<ListenerTls>* tls, Diagnostics* diag);

}  // namespace h2mesh::config
