#include "observe/line_format.h"

#include <algorithm>
#include <charconv>

#include "config/access_log_reader.h"

namespace h2mesh::observe {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// One field's value for one call. Absent: nothing to say (no status, no endpoint, no trace),
// written as null (JSON) or - (text).
struct Value {
  enum class Type { Absent, Text, Integer, Millis } type = Type::Absent;
  std::string_view text;
  int64_t number = 0;  // Integer; Millis: microseconds
};

void set(Value* v, std::string_view text) {
  if (!text.empty()) *v = Value{Value::Type::Text, text, 0};
}
void set(Value* v, int64_t number) {
  if (number >= 0) *v = Value{Value::Type::Integer, {}, number};  // -1: no grpc-status
}
void set(Value* v, Duration d) {
  const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  *v = Value{Value::Type::Millis, {}, std::max<int64_t>(us, 0)};
}

// The table's fields, in table order: positions 1.. of config::access_log_field_names().
using Getter = void (*)(const proxy::CallEvent&, Value*);
#define H2MESH_FIELD_GETTER(type, member, name, kind, attribute) \
  [](const proxy::CallEvent& c, Value* v) { set(v, c.member); },
constexpr Getter kGetters[] = {H2MESH_CALL_FIELDS(H2MESH_FIELD_GETTER)};
#undef H2MESH_FIELD_GETTER
constexpr size_t kTimeField = 0;
constexpr size_t kTraceIdField = std::size(kGetters) + 1;

void append_int(int64_t n, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), n);
  out->append(buf, r.ptr);
}

// Microseconds as milliseconds with three decimals: "12.034".
void append_millis(int64_t us, std::string* out) {
  append_int(us / 1000, out);
  const int64_t frac = us % 1000;
  const char digits[4] = {'.', static_cast<char>('0' + frac / 100),
                          static_cast<char>('0' + frac / 10 % 10),
                          static_cast<char>('0' + frac % 10)};
  out->append(digits, 4);
}

void append_digits(unsigned value, int width, char* at) {
  for (int i = width - 1; i >= 0; --i, value /= 10) at[i] = static_cast<char>('0' + value % 10);
}

// Length (2..4) of the valid UTF-8 sequence (RFC 3629: no overlong form, no surrogate, nothing
// above U+10FFFF) starting at s[i], a byte >= 0x80, and its code point; 0 when invalid.
size_t utf8_sequence(std::string_view s, size_t i, uint32_t* code_point) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t lead = byte(i);
  size_t len;
  uint8_t low = 0x80, high = 0xbf;  // the range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    len = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    len = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    len = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (i + len > s.size() || byte(i + 1) < low || byte(i + 1) > high) return 0;
  uint32_t cp = lead & (0xff >> (len + 1));
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  *code_point = cp;
  return len;
}

// Valid code points that some readers still take for a line break or a control: C1 controls
// (U+0085 is NEL), LINE SEPARATOR, PARAGRAPH SEPARATOR.
bool escaped_code_point(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029;
}

void append_u_escape(uint32_t cp, std::string* out) {
  const char e[6] = {
      '\\',          'u', kHex[(cp >> 12) & 0xf], kHex[(cp >> 8) & 0xf], kHex[(cp >> 4) & 0xf],
      kHex[cp & 0xf]};
  out->append(e, 6);
}

void append_x_escape(uint8_t byte, std::string* out) {
  const char e[4] = {'\\', 'x', kHex[byte >> 4], kHex[byte & 0xf]};
  out->append(e, 4);
}

// Appends `value` escaped: `plain(byte)` says which ASCII bytes go as they are; the others go
// to `ascii(byte)`; bytes >= 0x80 are checked as UTF-8: valid sequences go as they are (or as
// \uXXXX for escaped_code_point), each invalid byte to `invalid(byte)`.
template <typename Plain, typename Ascii, typename Invalid>
void append_escaped(std::string_view value, Plain plain, Ascii ascii, Invalid invalid,
                    std::string* out) {
  size_t run = 0;  // start of the bytes not yet appended that need no escape
  size_t i = 0;
  while (i < value.size()) {
    const auto c = static_cast<uint8_t>(value[i]);
    if (c < 0x80 && plain(c)) {
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t len = c < 0x80 ? 0 : utf8_sequence(value, i, &cp);
    if (len != 0 && !escaped_code_point(cp)) {
      i += len;
      continue;
    }
    out->append(value.data() + run, i - run);
    if (c < 0x80) {
      ascii(c);
      i += 1;
    } else if (len == 0) {
      invalid(c);
      i += 1;
    } else {
      append_u_escape(cp, out);
      i += len;
    }
    run = i;
  }
  out->append(value.data() + run, value.size() - run);
}

bool json_plain(uint8_t c) { return c >= 0x20 && c != '"' && c != '\\' && c != 0x7f; }

bool text_plain(uint8_t c) { return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '='; }

void append_json_value(const Value& v, std::string* out) {
  switch (v.type) {
    case Value::Type::Absent:
      out->append("null");
      break;
    case Value::Type::Text:
      append_json_string(v.text, out);
      break;
    case Value::Type::Integer:
      append_int(v.number, out);
      break;
    case Value::Type::Millis:
      append_millis(v.number, out);
      break;
  }
}

void append_text_field(const Value& v, std::string* out) {
  switch (v.type) {
    case Value::Type::Absent:
      out->push_back('-');
      break;
    case Value::Type::Text:
      append_text_value(v.text, out);
      break;
    case Value::Type::Integer:
      append_int(v.number, out);
      break;
    case Value::Type::Millis:
      append_millis(v.number, out);
      break;
  }
}

}  // namespace

void append_json_string(std::string_view value, std::string* out) {
  out->push_back('"');
  append_escaped(
      value, json_plain,
      [out](uint8_t c) {
        switch (c) {
          case '"':
            out->append("\\\"");
            break;
          case '\\':
            out->append("\\\\");
            break;
          case '\n':
            out->append("\\n");
            break;
          case '\r':
            out->append("\\r");
            break;
          case '\t':
            out->append("\\t");
            break;
          case '\b':
            out->append("\\b");
            break;
          case '\f':
            out->append("\\f");
            break;
          default:
            append_u_escape(c, out);
        }
      },
      [out](uint8_t) { out->append("\\ufffd"); }, out);
  out->push_back('"');
}

void append_text_value(std::string_view value, std::string* out) {
  if (!value.empty() && value != "-" && std::all_of(value.begin(), value.end(), [](char c) {
        return text_plain(static_cast<uint8_t>(c));
      })) {
    out->append(value);
    return;
  }
  out->push_back('"');
  // Inside quotes a space and '=' are plain: only the quote and the backslash could end or
  // change the value.
  append_escaped(
      value, [](uint8_t c) { return c >= 0x20 && c != '"' && c != '\\' && c != 0x7f; },
      [out](uint8_t c) {
        switch (c) {
          case '"':
            out->append("\\\"");
            break;
          case '\\':
            out->append("\\\\");
            break;
          case '\n':
            out->append("\\n");
            break;
          case '\r':
            out->append("\\r");
            break;
          case '\t':
            out->append("\\t");
            break;
          default:
            append_x_escape(c, out);
        }
      },
      [out](uint8_t c) { append_x_escape(c, out); }, out);
  out->push_back('"');
}

void append_time(WallTime t, SecondText* cache, std::string* out) {
  using namespace std::chrono;
  const int64_t ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  const int64_t second = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  if (second != cache->second) {
    // Calendar arithmetic only: gmtime_r takes glibc's time zone lock.
    const sys_seconds s{seconds(second)};
    const auto day = floor<days>(s);
    const year_month_day ymd{day};
    const hh_mm_ss hms{s - day};
    char* p = cache->text;
    append_digits(static_cast<unsigned>(static_cast<int>(ymd.year())), 4, p);
    p[4] = '-';
    append_digits(static_cast<unsigned>(ymd.month()), 2, p + 5);
    p[7] = '-';
    append_digits(static_cast<unsigned>(ymd.day()), 2, p + 8);
    p[10] = 'T';
    append_digits(static_cast<unsigned>(hms.hours().count()), 2, p + 11);
    p[13] = ':';
    append_digits(static_cast<unsigned>(hms.minutes().count()), 2, p + 14);
    p[16] = ':';
    append_digits(static_cast<unsigned>(hms.seconds().count()), 2, p + 17);
    cache->second = second;
  }
  char frac[5] = {'.', 0, 0, 0, 'Z'};
  append_digits(static_cast<unsigned>(ms - second * 1000), 3, frac + 1);
  out->append(cache->text, sizeof(cache->text));
  out->append(frac, sizeof(frac));
}

LineFormat::LineFormat(const config::AccessLog& config)
    : format_(config.format), sample_ratio_(config.sample_ratio) {
  const auto& names = config::access_log_field_names();
  if (config.fields.empty()) {
    for (size_t i = 0; i < names.size(); ++i) fields_.push_back(static_cast<uint8_t>(i));
    return;
  }
  for (const auto& name : config.fields) {
    auto it = std::find(names.begin(), names.end(), name);
    if (it != names.end()) fields_.push_back(static_cast<uint8_t>(it - names.begin()));
  }
}

void LineFormat::append(const proxy::CallEvent& call, WallTime start, SecondText* cache,
                        std::string* out) const {
  const auto& names = config::access_log_field_names();
  const bool json = format_ == config::AccessLog::Format::Json;
  if (json) out->push_back('{');
  bool first = true;
  for (uint8_t field : fields_) {
    if (!first) out->push_back(json ? ',' : ' ');
    first = false;
    // Keys are the table's names: plain ASCII, nothing to escape.
    if (json) {
      out->push_back('"');
      out->append(names[field]);
      out->append("\":");
    } else {
      out->append(names[field]);
      out->push_back('=');
    }
    if (field == kTimeField) {
      if (json) out->push_back('"');
      append_time(start, cache, out);
      if (json) out->push_back('"');
      continue;
    }
    Value v;
    if (field == kTraceIdField) {
      if (call.trace.valid) {
        char hex[32];
        for (size_t i = 0; i < 16; ++i) {
          hex[2 * i] = kHex[call.trace.trace_id[i] >> 4];
          hex[2 * i + 1] = kHex[call.trace.trace_id[i] & 0xf];
        }
        v = Value{Value::Type::Text, std::string_view(hex, sizeof(hex)), 0};
        json ? append_json_value(v, out) : append_text_field(v, out);
        continue;
      }
    } else {
      kGetters[field - 1](call, &v);
    }
    json ? append_json_value(v, out) : append_text_field(v, out);
  }
  if (json) out->push_back('}');
  out->push_back('\n');
}

}  // namespace h2mesh::observe
