#include "observe/line_format.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

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

// Numbers and absent values are written with their key in one append, through a buffer on the
// stack: a key (a name of the call table, or "trace_id", with its separator and punctuation: at
// most kMaxName + 4 bytes) and a value of at most 24 bytes.
constexpr size_t kMaxName = 32;
#define H2MESH_FIELD_NAME_FITS(type, member, name, kind, attribute) \
  static_assert(sizeof(name) - 1 <= kMaxName);
H2MESH_CALL_FIELDS(H2MESH_FIELD_NAME_FITS)
#undef H2MESH_FIELD_NAME_FITS
constexpr size_t kShortValueBuffer = kMaxName + 4 + 24;
// Text values up to this long that need no escape are written with their key the same way.
constexpr size_t kShortText = 64;

char* put_int(int64_t n, char* at) { return std::to_chars(at, at + 20, n).ptr; }

// Microseconds as milliseconds with three decimals: "12.034".
char* put_millis(int64_t us, char* at) {
  at = put_int(us / 1000, at);
  const int64_t frac = us % 1000;
  at[0] = '.';
  at[1] = static_cast<char>('0' + frac / 100);
  at[2] = static_cast<char>('0' + frac / 10 % 10);
  at[3] = static_cast<char>('0' + frac % 10);
  return at + 4;
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

// Per byte: whether it cannot go as it is inside quotes (kNotQuoted), or in a bare text value.
constexpr uint8_t kNotQuoted = 1, kNotBare = 2;
constexpr std::array<uint8_t, 256> kEscape = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') t[c] = kNotQuoted | kNotBare;
    if (c == ' ' || c == '=') t[c] = kNotBare;
  }
  return t;
}();

// How many bytes from `p` need no escape, eight at a time while none in a word does (the common
// case: a header value is mostly printable ASCII). Quoted (JSON string, quoted text value): every
// printable ASCII byte but '"' and '\\'. Bare (unquoted text value): not space or '=' either.
template <bool kBare>
size_t plain_prefix(const char* p, size_t n) {
  constexpr uint64_t kOnes = 0x0101010101010101, kHigh = 0x8080808080808080;
  // Word tests (exact about whether any byte matches, not about which one): "less than",
  // "greater than" and "equal" per byte, each setting that byte's high bit.
  const auto any_below = [](uint64_t w, uint8_t k) { return (w - kOnes * k) & ~w & kHigh; };
  const auto any_above = [](uint64_t w, uint8_t k) {
    return ((w + kOnes * (127 - k)) | w) & kHigh;
  };
  const auto any_equal = [any_below](uint64_t w, uint8_t c) {
    return any_below(w ^ (kOnes * c), 1);
  };
  const auto needs_escape = [&](const char* at) {
    uint64_t w;
    std::memcpy(&w, at, 8);
    uint64_t hit = any_below(w, kBare ? 0x21 : 0x20) | any_above(w, 0x7e) | any_equal(w, '"') |
                   any_equal(w, '\\');
    if constexpr (kBare) hit |= any_equal(w, '=');
    return hit != 0;
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    if (needs_escape(p + i)) break;
  // The last bytes (fewer than 8) as the last word, which overlaps the words already seen.
  if (i < n && n >= 8 && i + 8 > n && !needs_escape(p + n - 8)) return n;
  for (; i < n; ++i)
    if (kEscape[static_cast<uint8_t>(p[i])] & (kBare ? kNotBare : kNotQuoted)) break;
  return i;
}

// Appends `value` escaped: the bytes plain_prefix<false> passes go as they are; other ASCII bytes
// to `ascii(byte)`; bytes >= 0x80 are checked as UTF-8: valid sequences go as they are (or as
// \uXXXX for escaped_code_point), each invalid byte to `invalid(byte)`. Runs of bytes that go as
// they are are appended at once.
template <typename Ascii, typename Invalid>
void append_escaped(std::string_view value, Ascii ascii, Invalid invalid, std::string* out) {
  size_t run = 0;  // start of the bytes not yet appended that need no escape
  size_t i = 0;
  while (i < value.size()) {
    i += plain_prefix<false>(value.data() + i, value.size() - i);
    if (i == value.size()) break;
    const auto c = static_cast<uint8_t>(value[i]);
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

// The escapes JSON and the text format share: the quote, the backslash and the usual control
// characters. False for any other byte.
bool append_short_escape(uint8_t c, std::string* out) {
  switch (c) {
    case '"':
      out->append("\\\"");
      return true;
    case '\\':
      out->append("\\\\");
      return true;
    case '\n':
      out->append("\\n");
      return true;
    case '\r':
      out->append("\\r");
      return true;
    case '\t':
      out->append("\\t");
      return true;
    default:
      return false;
  }
}

}  // namespace

void append_json_string(std::string_view value, std::string* out) {
  out->push_back('"');
  if (plain_prefix<false>(value.data(), value.size()) == value.size()) {  // the usual case
    out->append(value);
    out->push_back('"');
    return;
  }
  append_escaped(
      value,
      [out](uint8_t c) {
        if (append_short_escape(c, out)) return;
        if (c == '\b') {
          out->append("\\b");
        } else if (c == '\f') {
          out->append("\\f");
        } else {
          append_u_escape(c, out);
        }
      },
      [out](uint8_t) { out->append("\\ufffd"); }, out);
  out->push_back('"');
}

void append_text_value(std::string_view value, std::string* out) {
  if (!value.empty() && value != "-" &&
      plain_prefix<true>(value.data(), value.size()) == value.size()) {
    out->append(value);
    return;
  }
  out->push_back('"');
  // Inside quotes a space and '=' are plain: only the quote and the backslash could end or
  // change the value.
  append_escaped(
      value,
      [out](uint8_t c) {
        if (!append_short_escape(c, out)) append_x_escape(c, out);
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
  std::vector<uint8_t> fields;
  if (config.fields.empty()) {
    for (size_t i = 0; i < names.size(); ++i) fields.push_back(static_cast<uint8_t>(i));
  } else {
    for (const auto& name : config.fields) {
      auto it = std::find(names.begin(), names.end(), name);
      if (it != names.end()) fields.push_back(static_cast<uint8_t>(it - names.begin()));
    }
  }
  // Keys are the table's names: plain ASCII, nothing to escape. Each field's separator and key
  // made once here: one append per field per line.
  const bool json = format_ == config::AccessLog::Format::Json;
  for (uint8_t field : fields) {
    std::string key;
    if (json) {
      key = fields_.empty() ? "{\"" : ",\"";
      key.append(names[field]);
      key.append(field == kTimeField ? "\":\"" : "\":");
    } else {
      key = fields_.empty() ? "" : " ";
      key.append(names[field]);
      key.push_back('=');
    }
    fields_.push_back({field, std::move(key)});
  }
}

void LineFormat::append(const proxy::CallEvent& call, WallTime start, SecondText* cache,
                        std::string* out) const {
  const bool json = format_ == config::AccessLog::Format::Json;
  if (json && fields_.empty()) out->push_back('{');
  for (const Field& f : fields_) {
    if (f.index == kTimeField) {
      out->append(f.key);
      append_time(start, cache, out);
      if (json) out->push_back('"');  // the opening one is in the key
      continue;
    }
    Value v;
    char hex[32];
    if (f.index == kTraceIdField) {
      if (call.trace.valid) {
        for (size_t i = 0; i < 16; ++i) {
          hex[2 * i] = kHex[call.trace.trace_id[i] >> 4];
          hex[2 * i + 1] = kHex[call.trace.trace_id[i] & 0xf];
        }
        v = Value{Value::Type::Text, std::string_view(hex, sizeof(hex)), 0};
      }
    } else {
      kGetters[f.index - 1](call, &v);
    }
    char buf[kShortValueBuffer + kShortText];
    std::memcpy(buf, f.key.data(), f.key.size());
    char* at = buf + f.key.size();
    switch (v.type) {
      case Value::Type::Integer:
        at = put_int(v.number, at);
        break;
      case Value::Type::Millis:
        at = put_millis(v.number, at);
        break;
      case Value::Type::Absent:
        if (json) {
          std::memcpy(at, "null", 4);
          at += 4;
        } else {
          *at++ = '-';
        }
        break;
      case Value::Type::Text:
        // Short values that need no escape (the usual ones) go with their key too.
        if (v.text.size() <= kShortText && (json || (v.text != "-")) &&
            (json ? plain_prefix<false>(v.text.data(), v.text.size())
                  : plain_prefix<true>(v.text.data(), v.text.size())) == v.text.size()) {
          if (json) *at++ = '"';
          std::memcpy(at, v.text.data(), v.text.size());
          at += v.text.size();
          if (json) *at++ = '"';
          break;
        }
        out->append(f.key);
        json ? append_json_string(v.text, out) : append_text_value(v.text, out);
        continue;
    }
    out->append(buf, static_cast<size_t>(at - buf));
  }
  if (json) out->push_back('}');
  out->push_back('\n');
}

}  // namespace h2mesh::observe
