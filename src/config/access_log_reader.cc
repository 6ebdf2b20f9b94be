#include "config/access_log_reader.h"

#include <algorithm>
#include <utility>

// The names a user may select are the call table's, so a new per-call field is selectable
// without a line here.
#include "common/call_fields.h"

namespace h2mesh::config {
namespace {

// Below this a worker's queue holds a few hundred lines: a burst between two turns of the
// writer would be dropped. Above, memory per worker grows for nothing a disk can absorb.
constexpr int64_t kMinQueueBytes = int64_t{64} << 10;
constexpr int64_t kMaxQueueBytes = int64_t{1} << 30;

constexpr std::pair<std::string_view, AccessLog::Format> kFormats[] = {
    {"json", AccessLog::Format::Json}, {"text", AccessLog::Format::Text}};

void read_path(const Located& value, std::string* path, Diagnostics* diag) {
  auto text = read_string(value, diag, /*allow_empty=*/true);
  if (!text) return;
  if (std::string why = check_access_log_path_text(*text); !why.empty()) {
    diag->add(value.mark, value.path + ": " + why,
              "a file, e.g. /var/log/h2mesh/access.log, or stdout");
    return;
  }
  *path = *text;
}

void read_fields(const Located& value, std::vector<std::string>* fields, Diagnostics* diag) {
  auto items = read_sequence(value, diag, "field");
  if (!items) return;
  const auto& names = access_log_field_names();
  std::vector<std::string> read;
  bool ok = true;
  for (const Located& item : *items) {
    auto name = read_string(item, diag);
    if (!name) {
      ok = false;
      continue;
    }
    if (std::find(names.begin(), names.end(), *name) == names.end()) {
      std::string hint = closest_match(*name, names);
      diag->add(item.mark, item.path + ": unknown field '" + *name + "'",
                hint.empty() ? "fields: " + join(names) : "did you mean '" + hint + "'?");
      ok = false;
    } else if (std::find(read.begin(), read.end(), *name) != read.end()) {
      diag->add(item.mark, item.path + ": '" + *name + "' is listed twice",
                "each field is written once per line");
      ok = false;
    } else {
      read.push_back(*name);
    }
  }
  if (ok) *fields = std::move(read);
}

}  // namespace

const std::vector<std::string_view>& access_log_field_names() {
#define H2MESH_FIELD_NAME(type, member, name, kind, attribute) name,
  static const std::vector<std::string_view> kNames = {
      "time", H2MESH_CALL_FIELDS(H2MESH_FIELD_NAME) "trace_id"};
#undef H2MESH_FIELD_NAME
  return kNames;
}

std::string check_access_log_path_text(std::string_view path) {
  // A shell would have expanded these; here they would name a file literally called "~/...".
  if (path.empty()) return "must not be empty";
  if (path.starts_with('~') || path.starts_with('$'))
    return "'" + std::string(path) + "' is not expanded";
  return {};
}

bool parse_access_log_format(std::string_view text, AccessLog::Format* format) {
  for (const auto& [name, value] : kFormats) {
    if (text == name) {
      *format = value;
      return true;
    }
  }
  return false;
}

void read_access_log(const Located& value, AccessLog* log, Diagnostics* diag) {
  MapReader map(value, {"path", "format", "fields", "sample_ratio", "queue_bytes"}, diag);
  if (!map.ok()) return;
  if (auto v = map.require("path", "where the lines go: a file, or stdout"))
    read_path(*v, &log->path, diag);
  if (auto v = map.get("format")) {
    if (auto i = read_choice(*v, {kFormats[0].first, kFormats[1].first}, diag))
      log->format = kFormats[*i].second;
  }
  if (auto v = map.get("fields")) read_fields(*v, &log->fields, diag);
  if (auto v = map.get("sample_ratio")) {
    if (auto ratio = read_decimal(*v, 0, 1, diag)) log->sample_ratio = *ratio;
  }
  if (auto v = map.get("queue_bytes")) {
    if (auto bytes = read_size(*v, kMinQueueBytes, kMaxQueueBytes, diag)) log->queue_bytes = *bytes;
  }
}

}  // namespace h2mesh::config
