#pragma once

// Inputs that libyaml-cpp 0.7 (Debian 12) cannot be given at all. Found by fuzz_config: a
// document whose first token is ',' (",a", "---\n,", "# c\n, x") makes YAML::Load loop for ever
// while its memory grows without bound (a 619-byte config reached 22 GB). Such text is checked
// here and refused before yaml-cpp sees it; a later yaml-cpp that parses it does no harm.

#include <optional>
#include <string_view>

namespace h2mesh::config {

struct YamlTextProblem {
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  const char* message = "";
  const char* hint = "";
};

// The first place in `text` yaml-cpp would not return from, or nullopt.
std::optional<YamlTextProblem> find_yaml_parser_trap(std::string_view text);

}  // namespace h2mesh::config
