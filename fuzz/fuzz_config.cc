// The YAML config parser and validator: any text gives either a config or errors, each with a
// message and a position inside the text, and never a crash or an exception.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  h2mesh::config::ParseResult r = h2mesh::config::parse_config(text, "fuzz.yaml");
  if (r.ok() == !r.errors.empty()) abort();  // ok means a config and no error
  if (!r.errors.empty() && r.config) abort();
  // A line past the end of the text would send a user looking at the wrong place.
  int lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& e : r.errors) {
    if (e.message.empty() || e.file != "fuzz.yaml") abort();
    if (e.line < 0 || e.line > lines + 1 || e.column < 0) abort();
    (void)e.to_string();
  }
  // Whatever validation lets through must be usable: every route names a known cluster and
  // makes at least one attempt.
  if (r.config) {
    for (const auto& l : r.config->listeners) {
      for (const auto& route : l.routes) {
        bool found = false;
        for (const auto& c : r.config->clusters) found = found || c.name == route.cluster;
        if (!found) abort();
        if (route.retry.max_attempts < 1) abort();
      }
    }
  }
  return 0;
}
