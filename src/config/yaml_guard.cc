#include "config/yaml_guard.h"

namespace h2mesh::config {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// "---" or "..." at the start of a line, followed by a blank or the end of the line.
bool is_marker(std::string_view line, std::string_view marker) {
  return line.starts_with(marker) && (line.size() == marker.size() || is_blank(line[marker.size()]));
}

}  // namespace

std::optional<YamlTextProblem> find_yaml_parser_trap(std::string_view text) {
  // Walks the lines before each document's first content token: blank lines, comments,
  // directives, document markers and node properties (tags, anchors) do not end the search.
  bool document_start = true;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    size_t i = 0;
    if (is_marker(line, "---")) {
      document_start = true;
      i = 3;
    } else if (is_marker(line, "...")) {
      document_start = true;
      continue;
    } else if (document_start && line.starts_with('%')) {
      continue;  // a directive
    }
    if (!document_start) continue;
    for (;;) {
      while (i < line.size() && is_blank(line[i])) ++i;
      if (i == line.size() || line[i] == '#') break;  // nothing more on this line
      if (line[i] == '!' || line[i] == '&') {          // a tag or an anchor: not yet content
        while (i < line.size() && !is_blank(line[i])) ++i;
        continue;
      }
      if (line[i] == ',')
        return YamlTextProblem{line_no, static_cast<int>(i + 1),
                               "a YAML document cannot start with ','"};
      document_start = false;
      break;
    }
  }
  return std::nullopt;
}

}  // namespace h2mesh::config
