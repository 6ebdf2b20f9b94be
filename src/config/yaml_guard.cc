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
  // YAML text is printable (YAML 1.2 section 5.1): a control character (NUL among them) is
  // refused at once; yaml-cpp 0.7 loops on some of them too (found by fuzz_config).
  int ctl_line = 1;
  size_t line_start = 0;
  for (size_t k = 0; k < text.size(); ++k) {
    const auto c = static_cast<unsigned char>(text[k]);
    if (c == '\n') {
      ++ctl_line;
      line_start = k + 1;
    } else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
      return YamlTextProblem{ctl_line, static_cast<int>(k - line_start + 1),
                             "a control character is not allowed in YAML text",
                             "remove it; a config file is plain text"};
    }
  }
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
      if (line[i] == '!' || line[i] == '&') {  // a tag or an anchor: not yet content
        // It ends at a blank or a flow indicator (YAML 1.2 ns-anchor-char).
        while (i < line.size() && !is_blank(line[i]) && line[i] != ',' && line[i] != '[' &&
               line[i] != ']' && line[i] != '{' && line[i] != '}')
          ++i;
        continue;
      }
      if (line[i] == ',')
        return YamlTextProblem{line_no, static_cast<int>(i + 1),
                               "a YAML document cannot start with ','",
                               "remove the ',' or quote the value"};
      document_start = false;
      break;
    }
  }
  return std::nullopt;
}

}  // namespace h2mesh::config
