#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace h2mesh::config {

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string message;
  std::string hint;  // may be empty
  // "file:line:column: error: message (hint: ...)"
  std::string to_string() const;
};

struct ParseResult {
  std::optional<Config> config;     // set only when errors is empty
  std::vector<ConfigError> errors;  // every error found, in file order
  bool ok() const { return errors.empty() && config.has_value(); }
};

// Parses and validates. Never throws; every problem becomes a ConfigError.
ParseResult parse_config(std::string_view yaml_text, std::string_view source_name);
ParseResult load_config_file(const std::string& path);

// "1.2.3.4:80", "[::1]:80". Returns false and sets *error on failure.
bool parse_socket_address(std::string_view text, SocketAddress* out, std::string* error);

// The candidate a mistyped `word` most likely meant, by the rule the config's "did you mean"
// hints follow; empty when none is close. For the command line's hints too.
std::string likely_meant(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace h2mesh::config
