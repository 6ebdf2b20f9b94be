#include "inject/manifest_io.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <regex>
#include <set>

#include "config/yaml_guard.h"

namespace h2mesh::inject {
namespace {

// Bounds what a small text can expand to through aliases ("billion laughs"): nodes built and
// bytes of scalars copied, over the whole document.
constexpr size_t kMaxNodes = 1'000'000;
constexpr size_t kMaxScalarBytes = 64u << 20;

// Said before a document injected with --legacy-sidecar (uninject drops these lines again).
constexpr std::string_view kLegacyNotePrefix = "# h2mesh legacy sidecar: ";
constexpr std::string_view kLegacyNote =
    "# h2mesh legacy sidecar: h2mesh-proxy is a regular container (--legacy-sidecar), so:\n"
    "# h2mesh legacy sidecar: - init containers run before the proxy: their outbound TCP fails;\n"
    "# h2mesh legacy sidecar: - Jobs are not injected (the proxy would never exit);\n"
    "# h2mesh legacy sidecar: - the proxy may stop before the app (a 5 s preStop delay only).\n";

bool is_separator_line(std::string_view line) {
  if (!line.starts_with("---")) return false;
  return line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\n' ||
         line[3] == '\r';
}

// go-yaml v2's strconv.ParseInt(s, 0, 64) then ParseUint: a sign, then 0x, 0o, 0b, a leading
// 0 (octal) or decimal digits.
std::optional<Json> parse_go_int(const std::string& s) {
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  const bool signed_text = i > 0;
  int base = 10;
  if (s.size() - i >= 2 && s[i] == '0') {
    const char p = s[i + 1];
    if (p == 'x' || p == 'X') base = 16, i += 2;
    else if (p == 'o' || p == 'O') base = 8, i += 2;
    else if (p == 'b' || p == 'B') base = 2, i += 2;
    else base = 8, i += 1;
  }
  if (i >= s.size()) return std::nullopt;
  unsigned __int128 value = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (digit < 0 || digit >= base) return std::nullopt;
    value = value * base + digit;
    if (value > static_cast<unsigned __int128>(UINT64_MAX)) return std::nullopt;
  }
  if (negative) {
    if (value > static_cast<unsigned __int128>(INT64_MAX) + 1) return std::nullopt;
    return Json(static_cast<int64_t>(-static_cast<__int128>(value)));
  }
  if (value <= static_cast<unsigned __int128>(INT64_MAX)) return Json(static_cast<int64_t>(value));
  if (signed_text) return std::nullopt;  // ParseUint takes no sign
  return Json(static_cast<uint64_t>(value));
}

// What a plain (unquoted, untagged) scalar means to Kubernetes (go-yaml v2's resolve).
Json resolve_plain(const std::string& s) {
  static const std::set<std::string> kNull = {"", "~", "null", "Null", "NULL"};
  static const std::set<std::string> kTrue = {"y", "Y", "yes", "Yes", "YES", "true", "True",
                                              "TRUE", "on", "On", "ON"};
  static const std::set<std::string> kFalse = {"n", "N", "no", "No", "NO", "false", "False",
                                               "FALSE", "off", "Off", "OFF"};
  static const std::set<std::string> kInf = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"};
  static const std::set<std::string> kNegInf = {"-.inf", "-.Inf", "-.INF"};
  static const std::set<std::string> kNan = {".nan", ".NaN", ".NAN"};
  if (kNull.count(s)) return nullptr;
  if (kTrue.count(s)) return true;
  if (kFalse.count(s)) return false;
  if (kInf.count(s)) return std::numeric_limits<double>::infinity();
  if (kNegInf.count(s)) return -std::numeric_limits<double>::infinity();
  if (kNan.count(s)) return std::numeric_limits<double>::quiet_NaN();
  if (std::string_view("+-.0123456789").find(s[0]) == std::string_view::npos) return s;
  std::string plain;
  for (char c : s)
    if (c != '_') plain += c;
  if (auto number = parse_go_int(plain)) return *number;
  static const std::regex kFloat(R"(^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$)");
  if (std::regex_match(plain, kFloat)) {
    errno = 0;
    const double value = std::strtod(plain.c_str(), nullptr);
    // Go's ParseFloat refuses what overflows; then the text stays a string.
    if (!(errno == ERANGE && std::isinf(value))) return value;
  }
  return s;
}

class Reader {
 public:
  explicit Reader(int first_line) : first_line_(first_line) {}

  Result<Json> convert(const YAML::Node& node) {
    if (++nodes_ > kMaxNodes)
      return fail(node.Mark(), "the document expands to more than 1,000,000 values (aliases)");
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return Json(nullptr);
      case YAML::NodeType::Scalar: {
        scalar_bytes_ += node.Scalar().size();
        if (scalar_bytes_ > kMaxScalarBytes)
          return fail(node.Mark(), "the document expands to more than 64 MiB of text (aliases)");
        const std::string& tag = node.Tag();
        // "!" marks a quoted or block scalar: always a string, as are explicit !!str ones.
        if (tag == "!" || tag == "tag:yaml.org,2002:str") return Json(node.Scalar());
        return resolve_plain(node.Scalar());
      }
      case YAML::NodeType::Sequence: {
        Json out = Json::array();
        for (const YAML::Node& item : node) {
          auto value = convert(item);
          if (!value.ok()) return value;
          out.push_back(std::move(*value));
        }
        return out;
      }
      case YAML::NodeType::Map:
        return convert_map(node);
    }
    return Json(nullptr);
  }

  Error fail(const YAML::Mark& mark, const std::string& message) const {
    return make_error(ErrorCode::InvalidArgument, where(mark) + message);
  }

  std::string where(const YAML::Mark& mark) const {
    if (mark.is_null()) return "";
    return "line " + std::to_string(first_line_ + mark.line) + ", column " +
           std::to_string(mark.column + 1) + ": ";
  }

 private:
  static bool is_merge_key(const YAML::Node& key) {
    return key.IsScalar() && key.Scalar() == "<<" && key.Tag() == "?";
  }

  Result<std::string> key_text(const YAML::Node& key) {
    if (key.IsNull()) return std::string("null");
    if (!key.IsScalar()) return fail(key.Mark(), "a key must be a scalar, not a list or a map");
    return key.Scalar();
  }

  // '<<' merge keys: the merged maps' keys that the map does not have itself, the first merged
  // map winning over later ones (YAML 1.1's merge type, as go-yaml v2 applies it).
  Result<Json> convert_map(const YAML::Node& node) {
    std::set<std::string> own;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (is_merge_key(it->first)) continue;
      auto key = key_text(it->first);
      if (!key.ok()) return key.error();
      if (!own.insert(*key).second)
        return fail(it->first.Mark(), "key '" + *key + "' is given twice");
    }
    Json out = Json::object();
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (is_merge_key(it->first)) {
        auto merged = convert(it->second);
        if (!merged.ok()) return merged;
        std::vector<const Json*> maps;
        if (merged->is_object()) {
          maps.push_back(&*merged);
        } else if (merged->is_array()) {
          for (const Json& m : *merged) maps.push_back(&m);
        }
        if (maps.empty() && !merged->is_object())
          return fail(it->second.Mark(), "a '<<' merge key needs a map or a list of maps");
        for (const Json* m : maps) {
          if (!m->is_object())
            return fail(it->second.Mark(), "a '<<' merge key needs a map or a list of maps");
          for (auto entry = m->begin(); entry != m->end(); ++entry)
            if (!own.count(entry.key()) && !out.contains(entry.key()))
              out[entry.key()] = entry.value();
        }
        continue;
      }
      auto key = key_text(it->first);
      if (!key.ok()) return key.error();
      auto value = convert(it->second);
      if (!value.ok()) return value;
      out[*key] = std::move(*value);
    }
    return out;
  }

  int first_line_;
  size_t nodes_ = 0;
  size_t scalar_bytes_ = 0;
};

// --- The emitter -------------------------------------------------------------------------

bool has_unicode_break(std::string_view s) {
  return s.find("\xC2\x85") != std::string_view::npos ||
         s.find("\xE2\x80\xA8") != std::string_view::npos ||
         s.find("\xE2\x80\xA9") != std::string_view::npos;
}

// True when `s` written plain reads back as the same string, in a block context.
bool plain_safe(const std::string& s) {
  if (s.empty()) return false;
  const Json meaning = resolve_plain(s);
  if (!meaning.is_string()) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  if (has_unicode_break(s) || s.starts_with("\xEF\xBB\xBF")) return false;
  const char first = s[0];
  if (std::string_view("?:,[]{}#&*!|>'\"%@`").find(first) != std::string_view::npos) return false;
  if (first == '-' && (s.size() == 1 || s[1] == ' ')) return false;
  if (s.starts_with("---") || s.starts_with("...")) return false;
  if (first == ' ' || s.back() == ' ' || s.back() == ':') return false;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return false;
  // Flow indicators are text in a block context, but a reader in doubt is not worth the risk.
  if (s.find_first_of("[]{}") != std::string::npos) return false;
  return true;
}

std::string double_quoted(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static const char kHex[] = "0123456789abcdef";
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else if (c == 0xC2 && i + 1 < s.size() && s[i + 1] == '\x85') {
          out += "\\u0085";
          ++i;
        } else if (c == 0xE2 && i + 2 < s.size() && s[i + 1] == '\x80' &&
                   (s[i + 2] == '\xA8' || s[i + 2] == '\xA9')) {
          out += s[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
          i += 2;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Text with double quotes or backslashes (JSON in an annotation) reads better single-quoted,
// where only ' is escaped (as ''); line breaks and control characters need double quotes.
bool single_quote_fits(const std::string& s) {
  if (s.find_first_of("\"\\") == std::string::npos) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return !has_unicode_break(s);
}

std::string single_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// A multi-line string as a literal block scalar ("|" or "|-"), its lines at `indent`; empty when
// the string needs the double-quoted style (leading spaces, blank-but-spaced lines, several
// trailing line breaks, control characters).
std::string literal_block(const std::string& s, int indent) {
  if (s.find('\n') == std::string::npos) return {};
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\n') || c == 0x7f) return {};
  if (has_unicode_break(s) || s.starts_with("\xEF\xBB\xBF")) return {};
  std::string content = s;
  std::string indicator = "|-";
  if (content.back() == '\n') {
    content.pop_back();
    indicator = "|";
    if (!content.empty() && content.back() == '\n') return {};
  }
  std::vector<std::string> lines;
  size_t start = 0;
  while (true) {
    size_t end = content.find('\n', start);
    lines.push_back(content.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  bool first_content = true;
  for (const std::string& line : lines) {
    if (line.empty()) continue;
    if (line.find_first_not_of(' ') == std::string::npos) return {};
    if (first_content && line[0] == ' ') return {};  // would set the block's indentation
    first_content = false;
  }
  if (first_content) return {};  // only empty lines
  std::string out = indicator;
  const std::string pad(indent, ' ');
  for (const std::string& line : lines) out += "\n" + (line.empty() ? "" : pad + line);
  return out;
}

std::string number_text(const Json& v) {
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isnan(d)) return ".nan";
    if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  }
  return v.dump();
}

// A scalar's text; block scalars put their lines at `indent`.
std::string scalar_text(const Json& v, int indent) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case Json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      if (plain_safe(s)) return s;
      std::string block = literal_block(s, indent);
      if (!block.empty()) return block;
      return single_quote_fits(s) ? single_quoted(s) : double_quoted(s);
    }
    case Json::value_t::binary: return "null";
    default: return number_text(v);
  }
}

std::string key_text(const std::string& key) { return plain_safe(key) ? key : double_quoted(key); }

void emit_node(const Json& v, int indent, bool inline_first, std::string* out);

// After "key:" or "-": the value on the same line or in the lines below.
void emit_after_indicator(const Json& v, int indent, bool in_sequence, std::string* out) {
  if (v.is_object() && !v.empty()) {
    if (in_sequence) {
      *out += ' ';
      emit_node(v, indent + 2, true, out);
    } else {
      *out += '\n';
      emit_node(v, indent + 2, false, out);
    }
  } else if (v.is_array() && !v.empty()) {
    if (in_sequence) {
      *out += ' ';
      emit_node(v, indent + 2, true, out);
    } else {
      *out += '\n';
      emit_node(v, indent + 2, false, out);
    }
  } else if (v.is_object()) {
    *out += " {}\n";
  } else if (v.is_array()) {
    *out += " []\n";
  } else {
    *out += ' ' + scalar_text(v, indent + 2) + '\n';
  }
}

// A non-empty map or sequence at `indent`; with inline_first, its first line continues the
// current one ("- " already written).
void emit_node(const Json& v, int indent, bool inline_first, std::string* out) {
  const std::string pad(indent, ' ');
  bool first = true;
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!(first && inline_first)) *out += pad;
      first = false;
      *out += key_text(it.key()) + ':';
      emit_after_indicator(it.value(), indent, false, out);
    }
  } else {
    for (const Json& item : v) {
      if (!(first && inline_first)) *out += pad;
      first = false;
      *out += '-';
      emit_after_indicator(item, indent, true, out);
    }
  }
}

std::string describe(const Json& object) {
  std::string kind = "?", name = "(no name)";
  if (object.is_object()) {
    const Json k = object.value("kind", Json());
    if (k.is_string()) kind = k.get<std::string>();
    auto metadata = object.find("metadata");
    if (metadata != object.end() && metadata->is_object()) {
      const Json n = metadata->value("name", Json());
      const Json g = metadata->value("generateName", Json());
      if (n.is_string()) name = n.get<std::string>();
      else if (g.is_string()) name = g.get<std::string>() + "*";
    }
  }
  return kind + "/" + name;
}

bool is_list(const Json& object) {
  if (!object.is_object()) return false;
  const Json kind = object.value("kind", Json());
  return kind.is_string() && kind.get<std::string>().ends_with("List") && object.contains("items");
}

// Each workload of `object` (itself, or a List's items) with its pod templates.
template <typename Fn>
Result<void> for_each_workload(Json& object, Fn&& fn) {
  if (is_list(object)) {
    Json& items = object["items"];
    if (!items.is_array()) return {};
    for (Json& item : items)
      if (auto r = for_each_workload(item, fn); !r.ok()) return r;
    return {};
  }
  for (Json* pod : pod_templates(object))
    if (auto r = fn(object, *pod); !r.ok()) return r;
  return {};
}

// The separator to write before a re-emitted document: the original one, unless it carried
// content (--- {a: 1}) that the emitted text now holds.
std::string separator_for_emitted(const std::string& separator) {
  if (separator.empty()) return separator;
  std::string_view rest = std::string_view(separator).substr(3);
  const size_t content = rest.find_first_not_of(" \t\r\n");
  if (content == std::string_view::npos || rest[content] == '#') return separator;
  return "---\n";
}

std::string json_line(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

using Mutation = std::function<Result<void>(Json& workload, Json& pod, DocumentReport* report)>;

// The shared loop of inject and uninject over the documents of `text`.
Result<std::string> rewrite(std::string_view text, OutputFormat format, bool drop_legacy_note,
                            std::string_view note_for_changed, const Mutation& mutate,
                            std::vector<DocumentReport>* reports) {
  std::string out;
  const std::vector<ManifestDocument> documents = split_documents(text);
  for (size_t index = 0; index < documents.size(); ++index) {
    const ManifestDocument& document = documents[index];
    auto data = read_document(document);
    const std::string where = "document " + std::to_string(index + 1);
    if (!data.ok()) return make_error(data.error().code, where + ": " + data.error().message);
    bool changed = false;
    auto visited = for_each_workload(*data, [&](Json& workload, Json& pod) -> Result<void> {
      DocumentReport report;
      report.index = static_cast<int>(index);
      report.what = describe(workload);
      if (auto r = mutate(workload, pod, &report); !r.ok())
        return make_error(r.error().code,
                          where + " (" + report.what + "): " + r.error().message);
      changed = changed || report.changed;
      if (reports) reports->push_back(std::move(report));
      return {};
    });
    if (!visited.ok()) return visited.error();
    if (format == OutputFormat::Json) {
      if (!data->is_null()) out += json_line(*data);
      continue;
    }
    if (!changed) {
      out += document.separator + document.body;
      continue;
    }
    // Separate from a previous document that did not end its last line.
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += separator_for_emitted(document.separator);
    out += note_for_changed;
    std::string comments = leading_comments(document.body);
    if (drop_legacy_note) {
      std::string kept;
      size_t start = 0;
      while (start < comments.size()) {
        size_t end = comments.find('\n', start);
        end = end == std::string::npos ? comments.size() : end + 1;
        std::string_view line = std::string_view(comments).substr(start, end - start);
        if (!line.starts_with(kLegacyNotePrefix)) kept += line;
        start = end;
      }
      comments = std::move(kept);
    }
    out += comments;
    out += emit_yaml(*data);
  }
  return out;
}

}  // namespace

std::vector<ManifestDocument> split_documents(std::string_view text) {
  std::vector<ManifestDocument> documents;
  ManifestDocument current;
  int line = 1;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    end = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view l = text.substr(start, end - start);
    if (is_separator_line(l)) {
      if (!current.separator.empty() || !current.body.empty()) documents.push_back(current);
      current = ManifestDocument{std::string(l), {}, line};
    } else {
      current.body += l;
    }
    ++line;
    start = end;
  }
  if (!current.separator.empty() || !current.body.empty()) documents.push_back(current);
  return documents;
}

Result<Json> read_document(const ManifestDocument& document) {
  const std::string text = document.separator + document.body;
  auto where = [&](int line, int column) {
    return "line " + std::to_string(document.first_line + line - 1) + ", column " +
           std::to_string(column) + ": ";
  };
  if (auto trap = config::find_yaml_parser_trap(text))
    return make_error(ErrorCode::InvalidArgument,
                      where(trap->line, trap->column) + trap->message +
                          (trap->hint.empty() ? "" : " (" + trap->hint + ")"));
  Reader reader(document.first_line);
  try {
    std::vector<YAML::Node> nodes = YAML::LoadAll(text);
    if (nodes.empty()) return Json(nullptr);
    if (nodes.size() > 1)
      return make_error(ErrorCode::InvalidArgument,
                        "more than one YAML document without a '---' line between them");
    return reader.convert(nodes[0]);
  } catch (const YAML::Exception& e) {
    return make_error(ErrorCode::InvalidArgument, reader.where(e.mark) + e.msg);
  }
}

std::string emit_yaml(const Json& value) {
  std::string out;
  if ((value.is_object() || value.is_array()) && !value.empty()) {
    emit_node(value, 0, false, &out);
  } else if (value.is_object()) {
    out = "{}\n";
  } else if (value.is_array()) {
    out = "[]\n";
  } else {
    out = scalar_text(value, 2) + "\n";
  }
  return out;
}

std::string leading_comments(std::string_view body) {
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    end = end == std::string_view::npos ? body.size() : end + 1;
    std::string_view line = body.substr(start, end - start);
    const size_t first = line.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && line[first] != '#') break;
    start = end;
  }
  std::string comments(body.substr(0, start));
  if (!comments.empty() && comments.back() != '\n') comments += '\n';
  return comments;
}

Result<std::string> inject_manifest(std::string_view text, const Options& options,
                                    OutputFormat format, std::vector<DocumentReport>* reports) {
  return rewrite(
      text, format, false, options.legacy_sidecar ? kLegacyNote : std::string_view(),
      [&](Json&, Json& pod, DocumentReport* report) -> Result<void> {
        auto outcome = inject_pod(pod, options);
        if (!outcome.ok()) return outcome.error();
        report->outcome = outcome->outcome;
        report->reason = outcome->reason;
        report->changed = outcome->outcome == Outcome::Injected;
        return {};
      },
      reports);
}

Result<std::string> uninject_manifest(std::string_view text, OutputFormat format,
                                      std::vector<DocumentReport>* reports) {
  return rewrite(
      text, format, true, {},
      [&](Json&, Json& pod, DocumentReport* report) -> Result<void> {
        auto removed = uninject_pod(pod);
        if (!removed.ok()) return removed.error();
        report->changed = *removed;
        return {};
      },
      reports);
}

}  // namespace h2mesh::inject
