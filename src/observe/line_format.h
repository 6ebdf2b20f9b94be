#pragma once

// How an access log line is made from a call (docs/observability.md#access-log): the selected
// fields (`access_log.fields`) in JSON or in text (key=value), one line per call, every value
// escaped so that no header a client sends can end a line, start another or break the JSON.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/call_event.h"

namespace h2mesh::observe {

using WallTime = std::chrono::system_clock::time_point;

// The text of the last second formatted ("2026-01-02T03:04:05"): calls ending within one second
// reuse it. One per worker.
struct SecondText {
  int64_t second = INT64_MIN;
  char text[19] = {};
};

// Immutable once made; shared by every worker's observer.
class LineFormat {
 public:
  // `config` is valid (its field names are known: config/access_log_reader.h).
  explicit LineFormat(const config::AccessLog& config);

  // Appends the call's line, ending with '\n', to *out. `start`: the wall-clock time the call
  // started (its `time` field).
  void append(const proxy::CallEvent& call, WallTime start, SecondText* cache,
              std::string* out) const;

  double sample_ratio() const { return sample_ratio_; }

 private:
  struct Field {
    uint8_t index;    // position in config::access_log_field_names()
    std::string key;  // what goes before the value: separator, key, ':' or '='
  };
  config::AccessLog::Format format_;
  std::vector<Field> fields_;
  double sample_ratio_;
};

// Exposed for tests. A JSON string, quotes included: '"', '\\' and control characters escaped
// (C0, DEL, C1, U+2028 and U+2029 as \uXXXX), each byte that is not part of valid UTF-8 written
// as \ufffd.
void append_json_string(std::string_view value, std::string* out);
// A text format value: as it is when it is printable ASCII without space, '"', '\\' or '=' (and
// not empty or "-", which means absent); else in double quotes with '"', '\\', \n, \r, \t
// escaped, other control bytes and bytes that are not valid UTF-8 as \xHH, C1, U+2028 and U+2029
// as \uXXXX.
void append_text_value(std::string_view value, std::string* out);
// RFC 3339, UTC, milliseconds: "2026-01-02T03:04:05.678Z".
void append_time(WallTime t, SecondText* cache, std::string* out);

}  // namespace h2mesh::observe
