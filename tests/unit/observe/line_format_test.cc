// Access log lines: every field, the selection and its order, absent values, time and duration
// formats, and escaping: header values a client chooses (authority, path) cannot end the line,
// start another one, add a key or break the JSON. Lines are read back by an independent JSON
// parser and by a key=value tokenizer written here from the documented text format.

#include "observe/line_format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace h2mesh::observe {
namespace {

using namespace std::chrono_literals;

proxy::CallEvent sample_call() {
  proxy::CallEvent c;
  c.listener = "grpc";
  c.authority = "greeter.example:50051";
  c.service = "helloworld.Greeter";
  c.method = "SayHello";
  c.grpc_status = 14;
  c.cluster = "greeter";
  c.upstream = "10.0.0.2:50051";
  c.attempts = 2;
  c.duration = 12345678ns;  // 12.345 ms (µs resolution)
  c.upstream_duration = 1500us;
  c.request_bytes = 17;
  c.response_bytes = 0;
  c.trace.valid = true;
  for (uint8_t i = 0; i < 16; ++i) c.trace.trace_id[i] = static_cast<uint8_t>(0x10 * i + i);
  return c;
}

// 2026-01-02T03:04:05.678Z
WallTime sample_time() {
  using namespace std::chrono;
  return sys_days{year{2026} / 1 / 2} + 3h + 4min + 5s + 678ms + 900us;
}

std::string line_of(const proxy::CallEvent& call, config::AccessLog::Format format,
                    std::vector<std::string> fields = {}, WallTime t = sample_time()) {
  config::AccessLog config;
  config.path = "stdout";
  config.format = format;
  config.fields = std::move(fields);
  LineFormat f(config);
  SecondText cache;
  std::string out;
  f.append(call, t, &cache, &out);
  return out;
}

constexpr auto kJson = config::AccessLog::Format::Json;
constexpr auto kText = config::AccessLog::Format::Text;

// Parses a text line as documented: `key=value` pairs separated by one space, ended by '\n';
// a value is bare, or in double quotes with \" \\ \n \r \t \xHH \uHHHH. Nullopt when the line
// does not follow the format.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_text(
    const std::string& line) {
  std::vector<std::pair<std::string, std::string>> out;
  if (line.empty() || line.back() != '\n') return std::nullopt;
  size_t i = 0;
  const size_t end = line.size() - 1;
  auto hex = [&](size_t at, size_t n) -> std::optional<uint32_t> {
    if (at + n > end) return std::nullopt;
    uint32_t v = 0;
    for (size_t k = 0; k < n; ++k) {
      const char c = line[at + k];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return v;
  };
  while (i < end) {
    const size_t eq = line.find('=', i);
    if (eq == std::string::npos || eq == i) return std::nullopt;
    std::string key = line.substr(i, eq - i);
    for (char c : key)
      if (!(c == '_' || (c >= 'a' && c <= 'z'))) return std::nullopt;
    i = eq + 1;
    std::string value;
    if (i < end && line[i] == '"') {
      ++i;
      for (;;) {
        if (i >= end) return std::nullopt;  // never closed
        const char c = line[i];
        if (c == '"') {
          ++i;
          break;
        }
        if (static_cast<uint8_t>(c) < 0x20 || c == 0x7f) return std::nullopt;
        if (c != '\\') {
          value += c;
          ++i;
          continue;
        }
        if (i + 1 >= end) return std::nullopt;
        const char e = line[i + 1];
        i += 2;
        if (e == '"' || e == '\\')
          value += e;
        else if (e == 'n')
          value += '\n';
        else if (e == 'r')
          value += '\r';
        else if (e == 't')
          value += '\t';
        else if (e == 'x') {
          auto v = hex(i, 2);
          if (!v) return std::nullopt;
          value += static_cast<char>(*v);
          i += 2;
        } else if (e == 'u') {
          auto v = hex(i, 4);
          if (!v) return std::nullopt;
          value += "U+" + std::to_string(*v);  // marked, not decoded: the tests compare it
          i += 4;
        } else {
          return std::nullopt;
        }
      }
    } else {
      while (i < end && line[i] != ' ') {
        const auto c = static_cast<uint8_t>(line[i]);
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') return std::nullopt;
        value += line[i++];
      }
      if (value.empty()) return std::nullopt;
    }
    out.emplace_back(std::move(key), std::move(value));
    if (i == end) break;
    if (line[i] != ' ') return std::nullopt;
    ++i;
    if (i == end) return std::nullopt;  // a trailing space
  }
  return out;
}

std::vector<std::string> keys_of(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : pairs) keys.push_back(k);
  return keys;
}

const std::vector<std::string> kAllFields = {
    "time",           "listener",    "authority",         "service",
    "method",         "grpc_status", "cluster",           "upstream",
    "attempts",       "duration",    "upstream_duration", "request_bytes",
    "response_bytes", "trace_id"};

TEST(AccessLogLine, JsonLineHasEveryFieldByDefault) {
  const std::string line = line_of(sample_call(), kJson);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto j = nlohmann::ordered_json::parse(line);
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, kAllFields);
  EXPECT_EQ(j["time"], "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(j["listener"], "grpc");
  EXPECT_EQ(j["authority"], "greeter.example:50051");
  EXPECT_EQ(j["service"], "helloworld.Greeter");
  EXPECT_EQ(j["method"], "SayHello");
  EXPECT_EQ(j["grpc_status"], 14);
  EXPECT_EQ(j["cluster"], "greeter");
  EXPECT_EQ(j["upstream"], "10.0.0.2:50051");
  EXPECT_EQ(j["attempts"], 2);
  EXPECT_DOUBLE_EQ(j["duration"].get<double>(), 12.345);
  EXPECT_DOUBLE_EQ(j["upstream_duration"].get<double>(), 1.5);
  EXPECT_EQ(j["request_bytes"], 17);
  EXPECT_EQ(j["response_bytes"], 0);
  EXPECT_EQ(j["trace_id"], "00112233445566778899aabbccddeeff");
  // Durations keep their microseconds as written, not as a float happens to print.
  EXPECT_NE(line.find("\"duration\":12.345,"), std::string::npos) << line;
  EXPECT_NE(line.find("\"upstream_duration\":1.500,"), std::string::npos) << line;
}

TEST(AccessLogLine, TextLineHasEveryFieldByDefault) {
  const std::string line = line_of(sample_call(), kText);
  EXPECT_EQ(line,
            "time=2026-01-02T03:04:05.678Z listener=grpc authority=greeter.example:50051 "
            "service=helloworld.Greeter method=SayHello grpc_status=14 cluster=greeter "
            "upstream=10.0.0.2:50051 attempts=2 duration=12.345 upstream_duration=1.500 "
            "request_bytes=17 response_bytes=0 trace_id=00112233445566778899aabbccddeeff\n");
}

TEST(AccessLogLine, AbsentValuesAreNullInJsonAndDashInText) {
  // A call answered before any endpoint was picked: no status from a backend (reset), no
  // upstream, no trace.
  proxy::CallEvent c = sample_call();
  c.grpc_status = proxy::kNoGrpcStatus;
  c.upstream = "";
  c.cluster = "";
  c.attempts = 0;
  c.trace = {};
  auto j = nlohmann::json::parse(line_of(c, kJson));
  EXPECT_TRUE(j["grpc_status"].is_null());
  EXPECT_TRUE(j["upstream"].is_null());
  EXPECT_TRUE(j["cluster"].is_null());
  EXPECT_TRUE(j["trace_id"].is_null());
  EXPECT_EQ(j["attempts"], 0);
  auto pairs = parse_text(line_of(c, kText));
  ASSERT_TRUE(pairs);
  std::map<std::string, std::string> text(pairs->begin(), pairs->end());
  EXPECT_EQ(text["grpc_status"], "-");
  EXPECT_EQ(text["upstream"], "-");
  EXPECT_EQ(text["trace_id"], "-");
  // A value that really is "-" is quoted, so the two never read the same.
  c.authority = "-";
  EXPECT_NE(line_of(c, kText, {"authority"}).find("authority=\"-\""), std::string::npos);
}

TEST(AccessLogLine, FieldSelectionKeepsTheConfiguredOrder) {
  const std::string line = line_of(sample_call(), kJson, {"grpc_status", "time", "method"});
  EXPECT_EQ(line,
            "{\"grpc_status\":14,\"time\":\"2026-01-02T03:04:05.678Z\",\"method\":\"SayHello\"}\n");
  EXPECT_EQ(line_of(sample_call(), kText, {"upstream", "duration"}),
            "upstream=10.0.0.2:50051 duration=12.345\n");
}

TEST(AccessLogLine, TimeIsRfc3339UtcWithMilliseconds) {
  using namespace std::chrono;
  SecondText cache;
  auto text = [&](WallTime t) {
    std::string out;
    append_time(t, &cache, &out);
    return out;
  };
  EXPECT_EQ(text(sys_days{year{2024} / 2 / 29} + 23h + 59min + 59s + 999ms),
            "2024-02-29T23:59:59.999Z");
  // The next millisecond is another day: the cached second must not be reused.
  EXPECT_EQ(text(sys_days{year{2024} / 3 / 1} + 0ms), "2024-03-01T00:00:00.000Z");
  EXPECT_EQ(text(sys_days{year{2024} / 3 / 1} + 7ms), "2024-03-01T00:00:00.007Z");
  EXPECT_EQ(text(sys_days{year{1970} / 1 / 1} + 0ms), "1970-01-01T00:00:00.000Z");
}

TEST(AccessLogLine, DurationsAreMillisecondsWithThreeDecimals) {
  proxy::CallEvent c = sample_call();
  c.duration = 0ns;
  c.upstream_duration = 2s;
  EXPECT_EQ(line_of(c, kText, {"duration", "upstream_duration"}),
            "duration=0.000 upstream_duration=2000.000\n");
  c.duration = 999ns;  // below a microsecond
  c.upstream_duration = 1001us;
  EXPECT_EQ(line_of(c, kText, {"duration", "upstream_duration"}),
            "duration=0.000 upstream_duration=1.001\n");
}

// What a client may put in :authority or :path (HPACK carries any byte but NUL, CR and LF in
// theory; the proxy must not rely on the peer's HTTP/2 library for it).
const std::string kHostile =
    std::string("evil\n{\"grpc_status\":0,\"x\":\"") + "\r\n" + "quote\" back\\slash " + "nul" +
    std::string(1, '\0') + " tab\t del\x7f esc\x1b" +
    " nel\xc2\x85 ls\xe2\x80\xa8 ps\xe2\x80\xa9" +      // C1 NEL, U+2028, U+2029 (valid UTF-8)
    " ff\xff overlong\xc0\xaf surrogate\xed\xa0\x80" +  // never valid UTF-8
    " cut\xe2\x82" + " ok: h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 key=value";

TEST(AccessLogLine, HostileHeaderValuesCannotForgeAJsonLine) {
  proxy::CallEvent c = sample_call();
  c.authority = kHostile;
  c.method = kHostile;
  const std::string line = line_of(c, kJson);
  // One line: the only line break is the last byte, and no control byte is written raw.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  for (size_t i = 0; i + 1 < line.size(); ++i)
    EXPECT_FALSE(static_cast<uint8_t>(line[i]) < 0x20 || line[i] == 0x7f) << "byte " << i;
  EXPECT_EQ(line.find("\xe2\x80\xa8"), std::string::npos);
  EXPECT_EQ(line.find("\xc2\x85"), std::string::npos);
  // Valid JSON (nlohmann rejects invalid UTF-8), with exactly the keys of a line.
  nlohmann::ordered_json j;
  ASSERT_NO_THROW(j = nlohmann::ordered_json::parse(line)) << line;
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, kAllFields);
  EXPECT_EQ(j["grpc_status"], 14);
  // The value reads back as sent, each byte that is not UTF-8 as U+FFFD.
  const std::string expected =
      std::string("evil\n{\"grpc_status\":0,\"x\":\"") + "\r\n" + "quote\" back\\slash " + "nul" +
      std::string(1, '\0') + " tab\t del\x7f esc\x1b" +
      " nel\xc2\x85 ls\xe2\x80\xa8 ps\xe2\x80\xa9" +
      " ff\xef\xbf\xbd overlong\xef\xbf\xbd\xef\xbf\xbd "
      "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" +
      " cut\xef\xbf\xbd\xef\xbf\xbd" + " ok: h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 key=value";
  EXPECT_EQ(j["authority"], expected);
  EXPECT_EQ(j["method"], expected);
}

TEST(AccessLogLine, HostileHeaderValuesCannotForgeATextLine) {
  proxy::CallEvent c = sample_call();
  c.authority = kHostile;
  c.method = kHostile;
  const std::string line = line_of(c, kText);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  for (size_t i = 0; i + 1 < line.size(); ++i)
    EXPECT_FALSE(static_cast<uint8_t>(line[i]) < 0x20 || line[i] == 0x7f) << "byte " << i;
  auto pairs = parse_text(line);
  ASSERT_TRUE(pairs) << line;
  EXPECT_EQ(keys_of(*pairs), kAllFields);
  std::map<std::string, std::string> text(pairs->begin(), pairs->end());
  // Bytes that are not UTF-8 come back as themselves (\xHH); NEL, U+2028 and U+2029 as \u.
  const std::string expected = std::string("evil\n{\"grpc_status\":0,\"x\":\"") + "\r\n" +
                               "quote\" back\\slash " + "nul" + std::string(1, '\0') +
                               " tab\t del\x7f esc\x1b" + " nelU+133 lsU+8232 psU+8233" +
                               " ff\xff overlong\xc0\xaf surrogate\xed\xa0\x80" + " cut\xe2\x82" +
                               " ok: h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 key=value";
  EXPECT_EQ(text["authority"], expected);
  EXPECT_EQ(text["method"], expected);
  EXPECT_EQ(text["grpc_status"], "14");
}

TEST(AccessLogLine, TextQuotesOnlyWhatNeedsIt) {
  std::string out;
  for (std::string_view v : {"SayHello", "10.0.0.1:50051", "a b", "a=b", "", "-", "caf\xc3\xa9"}) {
    append_text_value(v, &out);
    out += '|';
  }
  EXPECT_EQ(out, "SayHello|10.0.0.1:50051|\"a b\"|\"a=b\"|\"\"|\"-\"|\"caf\xc3\xa9\"|");
}

// Values are scanned a word (8 bytes) at a time while nothing in the word needs escaping, then a
// byte at a time. Whatever the byte and wherever it falls in a long value, the line is what the
// byte-at-a-time path makes of it in a short one ("a" + byte: too short for a word).
TEST(AccessLogLine, EveryByteAtEveryPositionOfALongValueIsEscapedAsInAShortOne) {
  for (int b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    std::string short_json, short_text;
    append_json_string(std::string{'a', byte}, &short_json);
    append_text_value(std::string{'a', byte}, &short_text);
    // The byte's escape: what the short value has between "a" and its closing quote.
    const bool text_bare = short_text.front() != '"';
    const std::string json_escape = short_json.substr(2, short_json.size() - 3);
    const std::string text_escape =
        text_bare ? std::string{byte} : short_text.substr(2, short_text.size() - 3);
    for (size_t at = 1; at <= 17; ++at) {
      const std::string before(at, 'a'), after(24 - at, 'b');
      std::string json, text;
      append_json_string(before + byte + after, &json);
      append_text_value(before + byte + after, &text);
      ASSERT_EQ(json, "\"" + before + json_escape + after + "\"") << "byte " << b << " at " << at;
      const std::string inner = before + text_escape + after;
      ASSERT_EQ(text, text_bare ? inner : "\"" + inner + "\"") << "byte " << b << " at " << at;
    }
  }
}

}  // namespace
}  // namespace h2mesh::observe
