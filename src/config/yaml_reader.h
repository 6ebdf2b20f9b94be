#pragma once

// Helpers for walking a yaml-cpp tree while collecting every problem instead of stopping at the
// first one. Internal to config/: only its readers and the config tests include this. Everything
// here runs on whichever thread calls parse_config and keeps no global state.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/parser.h"

namespace h2mesh::config {

// Collects errors for one source file, positioned from yaml-cpp's 0-based marks. `text` is the
// document being read; it must outlive this object.
class Diagnostics {
 public:
  Diagnostics(std::string file, std::string_view text) : file_(std::move(file)), text_(text) {}

  // A null mark (no position known) gives line and column 0.
  void add(const YAML::Mark& mark, std::string message, std::string hint = {});
  void add_at(int line, int column, std::string message, std::string hint = {});
  bool empty() const { return errors_.empty(); }

  // Every error, ordered by position (stable for errors at the same place).
  std::vector<ConfigError> take_sorted();

  // yaml-cpp marks an empty sequence item ("-" alone) where the next token starts. This finds
  // the item's own dash, searching back from `next` but not before `floor` (the sequence start);
  // it returns `next` when the text does not allow a confident answer.
  YAML::Mark empty_item_mark(const YAML::Mark& next, const YAML::Mark& floor) const;

 private:
  std::string file_;
  std::string_view text_;
  std::vector<ConfigError> errors_;
};

// 1-based line of a mark, 0 when unknown.
int line_of(const YAML::Mark& mark);

// A node and where to point when it is wrong. A null value is pointed at through its key:
// yaml-cpp places the mark of an empty value on the next token, often a later line.
struct Located {
  YAML::Node node;
  YAML::Mark mark;
  std::string path;  // e.g. "clusters[0].lb_policy"; empty for the document root
};

// "a map", "a sequence", "null", "the scalar 'x'": used in "expected ..., got ..." messages.
std::string describe_node(const YAML::Node& node);

// Reads one mapping. The constructor reports a non-map value, non-scalar keys, duplicate keys and
// unknown keys (with a did-you-mean hint); lookups then only see known keys, first occurrence.
class MapReader {
 public:
  MapReader(const Located& map, std::initializer_list<std::string_view> known_keys,
            Diagnostics* diag);

  // False when the value was not a map (already reported); lookups then return nothing.
  bool ok() const { return ok_; }
  const Located& where() const { return map_; }

  std::optional<Located> get(std::string_view key) const;
  // Like get, but reports a missing key at the map itself.
  std::optional<Located> require(std::string_view key, std::string_view hint = {}) const;
  // Where `key` itself is written, for errors about the key being there at all; the map's mark
  // when it is absent.
  YAML::Mark key_mark(std::string_view key) const;

 private:
  struct Entry {
    std::string key;
    YAML::Mark key_mark;
    Located value;
  };

  void check_key(const YAML::Node& key, const YAML::Node& value,
                 const std::vector<std::string_view>& known_keys);

  Located map_;
  Diagnostics* diag_;
  bool ok_ = false;
  std::vector<Entry> entries_;
};

// Where a check across two keys of `map` points: the later key's value when it was written, else
// the earlier one's, else the map itself (both defaults).
YAML::Mark cross_check_mark(const MapReader& map, std::string_view later, std::string_view earlier);

// The items of a sequence, or nullopt (reported) when `value` is not a sequence. With
// `what_non_empty` set, an empty sequence is reported as "at least one <what> is required".
std::optional<std::vector<Located>> read_sequence(const Located& value, Diagnostics* diag,
                                                  std::string_view what_non_empty = {});

// Typed scalar readers: each reports its own error and returns nullopt on failure.
std::optional<std::string> read_string(const Located& value, Diagnostics* diag,
                                       bool allow_empty = false);
std::optional<bool> read_bool(const Located& value, Diagnostics* diag);
std::optional<int64_t> read_int(const Located& value, int64_t min, int64_t max, Diagnostics* diag);
// Whole milliseconds up to 24h, written with a unit: "500ms", "30s", "2m", "1h".
std::optional<Millis> read_duration(const Located& value, Millis min, Diagnostics* diag);
// Bytes, plain or with a binary unit: "65536", "64KiB", "1MiB", "2GiB", "512B".
std::optional<int64_t> read_size(const Located& value, int64_t min, int64_t max, Diagnostics* diag);
// A plain decimal number ("0.2", "1", ".5"; no exponent, no inf or nan) in min..max.
std::optional<double> read_decimal(const Located& value, double min, double max, Diagnostics* diag);
// Index into `choices` of the value; a bad value lists the choices in the hint.
std::optional<size_t> read_choice(const Located& value,
                                  std::initializer_list<std::string_view> choices,
                                  Diagnostics* diag);

// Setters for optional keys of `map`: a present, valid value is stored in *field; a bad one is
// reported and leaves *field alone. They return false only for a present, invalid value, so
// checks across keys can skip values that were already reported.
bool set_uint(const MapReader& map, std::string_view key, int64_t min, int64_t max, uint32_t* field,
              Diagnostics* diag);
bool set_duration(const MapReader& map, std::string_view key, Millis min, Millis* field,
                  Diagnostics* diag);

// Pure text helpers, exposed for tests. On failure they return false and fill *error and *hint
// (hint may stay empty).
bool parse_duration_text(std::string_view text, Millis* out, std::string* error, std::string* hint);
bool parse_size_text(std::string_view text, int64_t* out, std::string* error, std::string* hint);
bool parse_decimal_text(std::string_view text, double* out, std::string* error, std::string* hint);

// "1500ms": durations in messages, exact whatever unit they were written in.
std::string format_millis(Millis value);
// Shortest text that reads back as `value`: "0.2", "10".
std::string format_decimal(double value);

// A quoted scalar ('...' or "...") of a YAML text, as a light scan finds it, with 0-based
// positions. yaml-cpp reports a quote that is never closed at the end of the document ("end of
// map not found"), far from the mistake; this scan points at the quote itself.
struct QuotedScalar {
  int line = 0;    // where the opening quote is
  int column = 0;
  int end_line = 0;  // where the closing quote is (the last line, if none)
  char quote = '"';
  bool closed = true;
  // A line it runs over looks like YAML structure ("key: ...", "- ..."): likely a missing quote.
  bool over_structure = false;
};
// Every quoted scalar of `text` in order, up to and including the first one never closed. Only
// quotes where a scalar can start count (a quote inside a plain scalar or a comment does not);
// block scalars (| and >) are skipped.
std::vector<QuotedScalar> find_quoted_scalars(std::string_view text);

// Optimal string alignment distance (Levenshtein plus adjacent transpositions), ASCII
// case-insensitive.
size_t edit_distance(std::string_view a, std::string_view b);
// The closest candidate when it is close enough to be a likely typo of `word`, else empty.
std::string closest_match(std::string_view word, const std::vector<std::string_view>& candidates);
// "a, b, c"
std::string join(const std::vector<std::string_view>& items);

}  // namespace h2mesh::config
