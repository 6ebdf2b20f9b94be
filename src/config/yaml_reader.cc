#include "config/yaml_reader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <system_error>

namespace h2mesh::config {

namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr int64_t kGiB = 1024 * kMiB;
constexpr Millis kMaxDuration = std::chrono::hours(24);

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

// "<path>: <text>", or just the text at the document root.
std::string at(const Located& value, std::string_view text) {
  return value.path.empty() ? std::string(text) : value.path + ": " + std::string(text);
}

// Splits "123unit" into its leading digits and the rest; false when there are no digits.
bool split_number(std::string_view text, uint64_t* number, std::string_view* unit, bool* overflow) {
  size_t digits = 0;
  while (digits < text.size() && is_digit(text[digits])) ++digits;
  if (digits == 0) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, *number);
  *overflow = ec == std::errc::result_out_of_range;
  *unit = text.substr(digits);
  return true;
}

std::string format_size(int64_t bytes) {
  if (bytes > 0 && bytes % kGiB == 0) return std::to_string(bytes / kGiB) + "GiB";
  if (bytes > 0 && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + "MiB";
  if (bytes > 0 && bytes % kKiB == 0) return std::to_string(bytes / kKiB) + "KiB";
  return std::to_string(bytes);
}

// Reports a non-scalar value and returns its text otherwise.
std::optional<std::string> scalar_text(const Located& value, std::string_view expected,
                                       Diagnostics* diag) {
  if (value.node.IsScalar()) return value.node.Scalar();
  diag->add(value.mark,
            at(value, "expected " + std::string(expected) + ", got " + describe_node(value.node)),
            value.node.IsNull() ? "write the value after the ':'"
                                : "write a single value here, not " + describe_node(value.node));
  return std::nullopt;
}

}  // namespace

void Diagnostics::add(const YAML::Mark& mark, std::string message, std::string hint) {
  if (mark.is_null()) {
    add_at(0, 0, std::move(message), std::move(hint));
  } else {
    add_at(mark.line + 1, mark.column + 1, std::move(message), std::move(hint));
  }
}

void Diagnostics::add_at(int line, int column, std::string message, std::string hint) {
  errors_.push_back(ConfigError{file_, line, column, std::move(message), std::move(hint)});
}

std::vector<ConfigError> Diagnostics::take_sorted() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(errors_);
}

YAML::Mark Diagnostics::empty_item_mark(const YAML::Mark& next, const YAML::Mark& floor) const {
  if (next.is_null() || floor.is_null() || next.pos < floor.pos ||
      static_cast<size_t>(next.pos) > text_.size()) {
    return next;
  }
  const size_t end = static_cast<size_t>(next.pos);
  // Positions count bytes only when nothing (a byte order mark, another encoding) shifted them.
  if (std::count(text_.begin(), text_.begin() + end, '\n') != next.line) return next;
  const std::string_view rest = text_.substr(end);
  for (std::string_view null_word : {"~", "null", "Null", "NULL"}) {
    if (rest.starts_with(null_word)) return next;  // an explicit null is marked correctly
  }
  for (size_t i = end; i-- > static_cast<size_t>(floor.pos);) {
    const char after = i + 1 < text_.size() ? text_[i + 1] : '\n';
    if (text_[i] != '-' || (after != ' ' && after != '\t' && after != '\r' && after != '\n')) {
      continue;
    }
    const size_t newline = text_.rfind('\n', i);
    const size_t line_start = newline == std::string_view::npos ? 0 : newline + 1;
    if (text_.substr(line_start, i - line_start).find_first_not_of(' ') != std::string::npos) {
      continue;  // not a block sequence dash: text precedes it on its line
    }
    YAML::Mark mark;
    mark.pos = static_cast<int>(i);
    mark.line = static_cast<int>(std::count(text_.begin(), text_.begin() + line_start, '\n'));
    mark.column = static_cast<int>(i - line_start);
    return mark;
  }
  return next;
}

int line_of(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
      return "nothing";
    case YAML::NodeType::Scalar:
      break;
  }
  std::string text = node.Scalar();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return "'" + text + "'";
}

MapReader::MapReader(const Located& map, std::initializer_list<std::string_view> known_keys,
                     Diagnostics* diag)
    : map_(map), diag_(diag) {
  if (!map.node.IsMap()) {
    diag_->add(map.mark, at(map, "expected a map, got " + describe_node(map.node)),
               "keys here: " + join(std::vector<std::string_view>(known_keys)));
    return;
  }
  ok_ = true;
  const std::vector<std::string_view> known(known_keys);
  for (auto it = map.node.begin(); it != map.node.end(); ++it) {
    check_key(it->first, it->second, known);
  }
}

void MapReader::check_key(const YAML::Node& key, const YAML::Node& value,
                          const std::vector<std::string_view>& known_keys) {
  if (!key.IsScalar()) {
    diag_->add(key.Mark(), at(map_, "keys must be plain strings, got " + describe_node(key)));
    return;
  }
  const std::string& name = key.Scalar();
  const std::string path = child_path(map_.path, name);
  if (std::find(known_keys.begin(), known_keys.end(), name) == known_keys.end()) {
    std::string suggestion = closest_match(name, known_keys);
    diag_->add(key.Mark(), at(map_, "unknown key '" + name + "'"),
               suggestion.empty() ? "known keys here: " + join(known_keys)
                                  : "did you mean '" + suggestion + "'?");
    return;
  }
  for (const Entry& seen : entries_) {
    if (seen.key == name) {
      diag_->add(
          key.Mark(), "duplicate key '" + path + "'",
          "first set on line " + std::to_string(line_of(seen.value.mark)) + "; remove one of them");
      return;
    }
  }
  entries_.push_back(
      Entry{name, key.Mark(), Located{value, value.IsNull() ? key.Mark() : value.Mark(), path}});
}

std::optional<Located> MapReader::get(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.key == key) return entry.value;
  }
  return std::nullopt;
}

YAML::Mark MapReader::key_mark(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.key == key) return entry.key_mark;
  }
  return map_.mark;
}

std::optional<Located> MapReader::require(std::string_view key, std::string_view hint) const {
  auto value = get(key);
  if (!value && ok_) {
    diag_->add(map_.mark, at(map_, "missing required key '" + std::string(key) + "'"),
               std::string(hint));
  }
  return value;
}

YAML::Mark cross_check_mark(const MapReader& map, std::string_view later,
                            std::string_view earlier) {
  if (auto value = map.get(later)) return value->mark;
  if (auto value = map.get(earlier)) return value->mark;
  return map.where().mark;
}

std::optional<std::vector<Located>> read_sequence(const Located& value, Diagnostics* diag,
                                                  std::string_view what_non_empty) {
  if (!value.node.IsSequence()) {
    diag->add(value.mark, at(value, "expected a sequence, got " + describe_node(value.node)),
              "write a list: one '- item' per line, or [a, b]");
    return std::nullopt;
  }
  std::vector<Located> items;
  for (size_t i = 0; i < value.node.size(); ++i) {
    YAML::Node item = value.node[i];
    const YAML::Mark mark =
        item.IsNull() ? diag->empty_item_mark(item.Mark(), value.node.Mark()) : item.Mark();
    items.push_back(Located{item, mark, value.path + "[" + std::to_string(i) + "]"});
  }
  if (items.empty() && !what_non_empty.empty()) {
    diag->add(value.mark,
              at(value, "at least one " + std::string(what_non_empty) + " is required"));
    return std::nullopt;
  }
  return items;
}

std::optional<std::string> read_string(const Located& value, Diagnostics* diag, bool allow_empty) {
  auto text = scalar_text(value, "a string", diag);
  if (text && text->empty() && !allow_empty) {
    diag->add(value.mark, at(value, "must not be empty"));
    return std::nullopt;
  }
  return text;
}

std::optional<bool> read_bool(const Located& value, Diagnostics* diag) {
  auto text = scalar_text(value, "true or false", diag);
  if (!text) return std::nullopt;
  if (*text == "true" || *text == "True" || *text == "TRUE") return true;
  if (*text == "false" || *text == "False" || *text == "FALSE") return false;
  diag->add(value.mark, at(value, "expected true or false, got '" + *text + "'"),
            "write true or false");
  return std::nullopt;
}

std::optional<int64_t> read_int(const Located& value, int64_t min, int64_t max, Diagnostics* diag) {
  auto text = scalar_text(value, "an integer", diag);
  if (!text) return std::nullopt;
  const std::string range = std::to_string(min) + ".." + std::to_string(max);
  int64_t number = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), number);
  if (ptr != text->data() + text->size() || text->empty() ||
      (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    diag->add(value.mark, at(value, "expected an integer, got '" + *text + "'"),
              "write a whole number in " + range);
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range || number < min || number > max) {
    diag->add(value.mark, at(value, *text + " is out of range"), "allowed range: " + range);
    return std::nullopt;
  }
  return number;
}

std::optional<Millis> read_duration(const Located& value, Millis min, Diagnostics* diag) {
  auto text = scalar_text(value, "a duration such as 30s", diag);
  if (!text) return std::nullopt;
  Millis duration{0};
  std::string error;
  std::string hint;
  if (!parse_duration_text(*text, &duration, &error, &hint)) {
    diag->add(value.mark, at(value, error), hint);
    return std::nullopt;
  }
  if (duration < min) {
    diag->add(value.mark, at(value, "must be at least " + format_millis(min)),
              "allowed range: " + format_millis(min) + "..24h");
    return std::nullopt;
  }
  return duration;
}

std::optional<int64_t> read_size(const Located& value, int64_t min, int64_t max,
                                 Diagnostics* diag) {
  auto text = scalar_text(value, "a size such as 1MiB", diag);
  if (!text) return std::nullopt;
  int64_t bytes = 0;
  std::string error;
  std::string hint;
  if (!parse_size_text(*text, &bytes, &error, &hint)) {
    diag->add(value.mark, at(value, error), hint);
    return std::nullopt;
  }
  if (bytes < min || bytes > max) {
    diag->add(value.mark, at(value, "size " + *text + " is out of range"),
              "allowed range: " + format_size(min) + ".." + format_size(max) + " bytes");
    return std::nullopt;
  }
  return bytes;
}

std::optional<double> read_decimal(const Located& value, double min, double max,
                                   Diagnostics* diag) {
  auto text = scalar_text(value, "a number such as 0.2", diag);
  if (!text) return std::nullopt;
  const std::string range = format_decimal(min) + ".." + format_decimal(max);
  double number = 0;
  std::string error;
  std::string hint;
  if (!parse_decimal_text(*text, &number, &error, &hint)) {
    diag->add(value.mark, at(value, error), hint + "; allowed range: " + range);
    return std::nullopt;
  }
  if (number < min || number > max) {
    diag->add(value.mark, at(value, *text + " is out of range"), "allowed range: " + range);
    return std::nullopt;
  }
  return number;
}

std::optional<size_t> read_choice(const Located& value,
                                  std::initializer_list<std::string_view> choices,
                                  Diagnostics* diag) {
  auto text = scalar_text(value, "one of the listed values", diag);
  if (!text) return std::nullopt;
  const std::vector<std::string_view> allowed(choices);
  for (size_t i = 0; i < allowed.size(); ++i) {
    if (allowed[i] == *text) return i;
  }
  std::string hint = "expected one of: " + join(allowed);
  std::string suggestion = closest_match(*text, allowed);
  if (!suggestion.empty()) hint = "did you mean '" + suggestion + "'? " + hint;
  diag->add(value.mark, at(value, "invalid value '" + *text + "'"), hint);
  return std::nullopt;
}

bool parse_duration_text(std::string_view text, Millis* out, std::string* error,
                         std::string* hint) {
  const std::string quoted = "'" + std::string(text) + "'";
  uint64_t number = 0;
  std::string_view unit;
  bool overflow = false;
  if (!split_number(text, &number, &unit, &overflow)) {
    *error = "invalid duration " + quoted;
    *hint = text.starts_with('-') ? "durations cannot be negative" : "write 30s or 500ms";
    return false;
  }
  if (unit.starts_with('.')) {
    *error = "invalid duration " + quoted + ": durations are whole numbers";
    *hint = "use a smaller unit, e.g. 1500ms instead of 1.5s";
    return false;
  }
  int64_t unit_ms = 0;
  if (unit == "ms") unit_ms = 1;
  if (unit == "s") unit_ms = 1000;
  if (unit == "m") unit_ms = int64_t{60} * 1000;
  if (unit == "h") unit_ms = int64_t{3600} * 1000;
  if (unit_ms == 0) {
    *error = unit.empty()
                 ? "duration " + quoted + " has no unit"
                 : "invalid duration " + quoted + ": unknown unit '" + std::string(unit) + "'";
    *hint = "write 30s or 500ms; the units are ms, s, m and h";
    return false;
  }
  const auto max_units = static_cast<uint64_t>(kMaxDuration.count() / unit_ms);
  if (overflow || number > max_units) {
    *error = "duration " + quoted + " is too long";
    *hint = "durations are limited to 24h";
    return false;
  }
  *out = Millis(static_cast<int64_t>(number) * unit_ms);
  return true;
}

bool parse_size_text(std::string_view text, int64_t* out, std::string* error, std::string* hint) {
  const std::string quoted = "'" + std::string(text) + "'";
  uint64_t number = 0;
  std::string_view unit;
  bool overflow = false;
  if (!split_number(text, &number, &unit, &overflow) || unit.starts_with('.')) {
    *error = "invalid size " + quoted;
    *hint = "write a whole number of bytes or use a unit, e.g. 65536, 64KiB or 1MiB";
    return false;
  }
  int64_t multiplier = 0;
  if (unit.empty() || unit == "B") multiplier = 1;
  if (unit == "KiB") multiplier = kKiB;
  if (unit == "MiB") multiplier = kMiB;
  if (unit == "GiB") multiplier = kGiB;
  if (multiplier == 0) {
    *error = "invalid size " + quoted + ": unknown unit '" + std::string(unit) + "'";
    *hint = "use plain bytes or the binary units KiB, MiB and GiB, where 1KiB = 1024 bytes";
    return false;
  }
  if (overflow ||
      number > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / multiplier)) {
    *error = "size " + quoted + " is too large";
    hint->clear();
    return false;
  }
  *out = static_cast<int64_t>(number) * multiplier;
  return true;
}

bool parse_decimal_text(std::string_view text, double* out, std::string* error, std::string* hint) {
  // Checked by hand first: from_chars alone would also take "inf", "nan" and exponents, which
  // read as typos in a config file.
  size_t i = text.starts_with('-') ? 1 : 0;
  size_t digits = 0;
  for (; i < text.size() && is_digit(text[i]); ++i) ++digits;
  if (i < text.size() && text[i] == '.') {
    for (++i; i < text.size() && is_digit(text[i]); ++i) ++digits;
  }
  if (digits == 0 || i != text.size()) {
    *error = "expected a number, got '" + std::string(text) + "'";
    *hint = "write a plain decimal number such as 0.2 or 1";
    return false;
  }
  double value = 0;
  auto [ptr, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    *error = "number '" + std::string(text) + "' cannot be represented";
    *hint = "write a plain decimal number such as 0.2 or 1";
    return false;
  }
  *out = value == 0 ? 0.0 : value;  // no -0
  return true;
}

std::string format_millis(Millis value) { return std::to_string(value.count()) + "ms"; }

std::string format_decimal(double value) {
  char buffer[64];
  auto [ptr, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return ec == std::errc() ? std::string(buffer, ptr) : std::to_string(value);
}

bool set_uint(const MapReader& map, std::string_view key, int64_t min, int64_t max, uint32_t* field,
              Diagnostics* diag) {
  auto value = map.get(key);
  if (!value) return true;
  auto number = read_int(*value, min, max, diag);
  if (number) *field = static_cast<uint32_t>(*number);
  return number.has_value();
}

bool set_duration(const MapReader& map, std::string_view key, Millis min, Millis* field,
                  Diagnostics* diag) {
  auto value = map.get(key);
  if (!value) return true;
  auto duration = read_duration(*value, min, diag);
  if (duration) *field = *duration;
  return duration.has_value();
}

size_t edit_distance(std::string_view a, std::string_view b) {
  // Rolling rows of the optimal string alignment table: two back for transpositions.
  std::vector<size_t> before(b.size() + 1);
  std::vector<size_t> previous(b.size() + 1);
  std::vector<size_t> current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string_view>& candidates) {
  // Longer words tolerate more typos; a short word with two edits is just another word. A
  // word that extends or shortens a candidate ("warning" for "warn") is a likely slip too.
  const size_t allowed = std::clamp<size_t>(word.size() / 3, 1, 3);
  std::string_view best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (std::string_view candidate : candidates) {
    const size_t distance = edit_distance(word, candidate);
    const size_t shorter = std::min(word.size(), candidate.size());
    const bool close =
        distance <= allowed ||
        (shorter >= 3 && edit_distance(word.substr(0, shorter), candidate.substr(0, shorter)) == 0);
    if (close && distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return std::string(best);
}

std::string join(const std::vector<std::string_view>& items) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

namespace {

// "  key: ...", "  key:" or "  - ...": a line that reads as YAML structure.
bool looks_like_structure(std::string_view line) {
  size_t i = line.find_first_not_of(' ');
  if (i == std::string_view::npos) return false;
  line.remove_prefix(i);
  if (line.starts_with("- ") || line == "-") return true;
  size_t k = 0;
  while (k < line.size() && (std::isalnum(static_cast<unsigned char>(line[k])) || line[k] == '_' ||
                             line[k] == '-' || line[k] == '.'))
    ++k;
  return k > 0 && k < line.size() && line[k] == ':' &&
         (k + 1 == line.size() || line[k + 1] == ' ' || line[k + 1] == '\r');
}

}  // namespace

std::vector<QuotedScalar> find_quoted_scalars(std::string_view text) {
  std::vector<QuotedScalar> out;
  const size_t n = text.size();
  auto blank_at = [&](size_t k) {
    return k >= n || text[k] == ' ' || text[k] == '\t' || text[k] == '\n' || text[k] == '\r';
  };
  auto skip_to_eol = [&](size_t k) {
    while (k < n && text[k] != '\n') ++k;
    return k;
  };
  size_t i = 0, line_start = 0;
  int line = 0, line_indent = 0, flow = 0;
  int block_indent = -1;  // inside a block scalar whose parent line has this indentation
  bool new_line = true, value_start = true;
  while (i < n) {
    if (new_line) {
      new_line = false;
      size_t k = i;
      while (k < n && text[k] == ' ') ++k;
      const int indent = static_cast<int>(k - i);
      const bool empty = k >= n || text[k] == '\n' || text[k] == '\r';
      if (block_indent >= 0 && (empty || indent > block_indent)) {
        i = skip_to_eol(k);  // a line of the block scalar: its quotes are text
        continue;
      }
      block_indent = -1;
      line_indent = indent;
      if (flow == 0) value_start = true;
      i = k;
      continue;
    }
    const char c = text[i];
    if (c == '\n') {
      line_start = ++i;
      ++line;
      new_line = true;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    if (c == '#' && (i == line_start || text[i - 1] == ' ' || text[i - 1] == '\t')) {
      i = skip_to_eol(i);
      continue;
    }
    if (value_start) {
      if (c == '"' || c == '\'') {
        QuotedScalar q{line, static_cast<int>(i - line_start), line, c, false};
        size_t k = i + 1;
        while (k < n) {
          if (text[k] == '\n') {
            ++line;
            line_start = k + 1;
            const size_t eol = text.find('\n', line_start);
            if (looks_like_structure(text.substr(line_start, eol == std::string_view::npos
                                                                 ? std::string_view::npos
                                                                 : eol - line_start)))
              q.over_structure = true;
          } else if (c == '"' && text[k] == '\\') {
            ++k;  // the escaped character (a line break too) is text
            if (k < n && text[k] == '\n') {
              ++line;
              line_start = k + 1;
            }
          } else if (text[k] == c) {
            if (c == '\'' && k + 1 < n && text[k + 1] == '\'') {
              ++k;  // '' is a quote inside a single-quoted scalar
            } else {
              q.closed = true;
              break;
            }
          }
          ++k;
        }
        q.end_line = line;
        out.push_back(q);
        if (!q.closed) return out;
        i = k + 1;
        value_start = false;
        continue;
      }
      if ((c == '|' || c == '>') && flow == 0) {
        block_indent = line_indent;
        i = skip_to_eol(i);
        continue;
      }
      if ((c == '-' || c == '?') && blank_at(i + 1)) {  // sequence entry, complex key
        ++i;
        continue;
      }
      if (c == '&' || c == '!') {  // anchor or tag: the scalar comes after it
        while (!blank_at(i)) ++i;
        continue;
      }
      if (c == '[' || c == '{') {
        ++flow;
        ++i;
        continue;
      }
      if (flow > 0 && c == ',') {
        ++i;
        continue;
      }
      value_start = false;  // a plain scalar (or an alias) starts here
    }
    if (c == ':' && (blank_at(i + 1) || (flow > 0 && std::string_view(",]}").find(text[i + 1]) !=
                                                         std::string_view::npos))) {
      value_start = true;
    } else if (flow > 0 && c == ',') {
      value_start = true;
    } else if (c == '[' || c == '{') {
      ++flow;
      value_start = true;
    } else if ((c == ']' || c == '}') && flow > 0) {
      --flow;
    }
    ++i;
  }
  return out;
}

}  // namespace h2mesh::config
