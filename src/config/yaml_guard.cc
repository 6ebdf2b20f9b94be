#include "config/yaml_guard.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <exception>
#include <sstream>

namespace h2mesh::config {
namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

std::optional<YamlTextProblem> find_control_character(std::string_view text) {
  int line = 1;
  size_t line_start = 0;
  for (size_t k = 0; k < text.size(); ++k) {
    const auto c = static_cast<unsigned char>(text[k]);
    if (c == '\n') {
      ++line;
      line_start = k + 1;
    } else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
      return YamlTextProblem{line, static_cast<int>(k - line_start + 1),
                             "a control character is not allowed in YAML text",
                             "remove it; a config file is plain text"};
    }
  }
  return std::nullopt;
}

// Only where each document starts matters: no node is built, so the check costs one pass of
// yaml-cpp's scanner and parser.
class DocumentStarts final : public YAML::EventHandler {
 public:
  const YAML::Mark& last() const { return last_; }

  void OnDocumentStart(const YAML::Mark& mark) override { last_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  YAML::Mark last_;
};

YamlTextProblem token_left_behind(std::string_view text, const YAML::Mark& mark) {
  // yaml-cpp counts positions after a byte order mark it skipped.
  size_t at = static_cast<size_t>(mark.pos);
  if (text.starts_with(kByteOrderMark)) at += kByteOrderMark.size();
  const char c = at < text.size() ? text[at] : '\0';
  YamlTextProblem problem{mark.line + 1, mark.column + 1, "", ""};
  if (c == ',') {
    problem.message = "unexpected ',' after the document's top-level value";
    problem.hint =
        "remove it, or quote the text it starts: a ',' separates items only inside "
        "[ ] or { }";
  } else if (c > ' ' && c < 0x7f) {
    problem.message = std::string("unexpected '") + c + "' after the document's top-level value";
    problem.hint = "remove it, or quote the text it starts";
  } else {
    problem.message = "unexpected text after the document's top-level value";
    problem.hint = "remove it, or quote the text it starts";
  }
  return problem;
}

// A document that consumes a token starts the next one past it: the parser never pops a
// document made only of zero-width tokens (a block collection's start and end enclose a '-',
// '?', ':' or a key). So two documents starting at one position mean the first consumed nothing,
// and LoadAll would go on returning that same empty document for ever.
std::optional<YamlTextProblem> find_stalled_document(std::string_view text) {
  std::istringstream in{std::string(text)};
  YAML::Parser parser(in);
  DocumentStarts starts;
  int previous_start = -1;
  try {
    while (parser.HandleNextDocument(starts)) {
      const YAML::Mark& start = starts.last();
      if (start.pos == previous_start) return token_left_behind(text, start);
      previous_start = start.pos;
    }
  } catch (const std::exception&) {
    // A syntax error, reported by the reader when yaml-cpp meets it again at the same place.
  }
  return std::nullopt;
}

}  // namespace

std::optional<YamlTextProblem> find_yaml_parser_trap(std::string_view text) {
  if (auto problem = find_control_character(text)) return problem;
  return find_stalled_document(text);
}

}  // namespace h2mesh::config
