#include "config/yaml_reader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

namespace h2mesh::config {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

// ---- Helpers ----------------------------------------------------------------------------------

TEST(YamlReader, DurationTextAcceptsEveryUnit) {
  Millis value{0};
  std::string error;
  std::string hint;
  ASSERT_TRUE(parse_duration_text("500ms", &value, &error, &hint));
  EXPECT_EQ(value, Millis(500));
  ASSERT_TRUE(parse_duration_text("30s", &value, &error, &hint));
  EXPECT_EQ(value, seconds(30));
  ASSERT_TRUE(parse_duration_text("2m", &value, &error, &hint));
  EXPECT_EQ(value, minutes(2));
  ASSERT_TRUE(parse_duration_text("24h", &value, &error, &hint));
  EXPECT_EQ(value, hours(24));
  EXPECT_FALSE(parse_duration_text("", &value, &error, &hint));
  EXPECT_FALSE(parse_duration_text("s", &value, &error, &hint));
  EXPECT_FALSE(parse_duration_text("1S", &value, &error, &hint));
  EXPECT_FALSE(parse_duration_text("99999999999999999999999ms", &value, &error, &hint));
  EXPECT_FALSE(parse_duration_text("86400001ms", &value, &error, &hint));
}

TEST(YamlReader, SizeTextAcceptsBytesAndBinaryUnits) {
  int64_t value = 0;
  std::string error;
  std::string hint;
  ASSERT_TRUE(parse_size_text("65536", &value, &error, &hint));
  EXPECT_EQ(value, 65536);
  ASSERT_TRUE(parse_size_text("512B", &value, &error, &hint));
  EXPECT_EQ(value, 512);
  ASSERT_TRUE(parse_size_text("64KiB", &value, &error, &hint));
  EXPECT_EQ(value, 64 * 1024);
  ASSERT_TRUE(parse_size_text("16MiB", &value, &error, &hint));
  EXPECT_EQ(value, 16 << 20);
  ASSERT_TRUE(parse_size_text("3GiB", &value, &error, &hint));
  EXPECT_EQ(value, int64_t{3} << 30);
  EXPECT_FALSE(parse_size_text("1.5MiB", &value, &error, &hint));
  EXPECT_FALSE(parse_size_text("1kib", &value, &error, &hint));
  EXPECT_FALSE(parse_size_text("-1", &value, &error, &hint));
  EXPECT_FALSE(parse_size_text("99999999999GiB", &value, &error, &hint));
}

TEST(YamlReader, DecimalTextAcceptsPlainDecimalsOnly) {
  double value = -1;
  std::string error;
  std::string hint;
  ASSERT_TRUE(parse_decimal_text("0.2", &value, &error, &hint));
  EXPECT_DOUBLE_EQ(value, 0.2);
  ASSERT_TRUE(parse_decimal_text("1", &value, &error, &hint));
  EXPECT_DOUBLE_EQ(value, 1.0);
  ASSERT_TRUE(parse_decimal_text("0", &value, &error, &hint));
  EXPECT_DOUBLE_EQ(value, 0.0);
  ASSERT_TRUE(parse_decimal_text(".5", &value, &error, &hint));
  EXPECT_DOUBLE_EQ(value, 0.5);
  ASSERT_TRUE(parse_decimal_text("3.", &value, &error, &hint));
  EXPECT_DOUBLE_EQ(value, 3.0);
  ASSERT_TRUE(parse_decimal_text("-2.25", &value, &error, &hint));
  EXPECT_DOUBLE_EQ(value, -2.25);
  ASSERT_TRUE(parse_decimal_text("-0.0", &value, &error, &hint));
  EXPECT_FALSE(std::signbit(value));
  for (const char* bad : {"", ".", "-", "+1", "1e3", "1E3", "inf", "nan", ".inf", "0x10", "1,5",
                          " 1", "1 ", "1.2.3", "--1", "1%"}) {
    SCOPED_TRACE(bad);
    error.clear();
    EXPECT_FALSE(parse_decimal_text(bad, &value, &error, &hint));
    EXPECT_NE(error.find("expected a number"), std::string::npos) << error;
    EXPECT_NE(hint.find("0.2"), std::string::npos) << hint;
  }
}

TEST(YamlReader, FormatsDecimalsAndMillisecondsForMessages) {
  EXPECT_EQ(format_decimal(0), "0");
  EXPECT_EQ(format_decimal(10), "10");
  EXPECT_EQ(format_decimal(0.2), "0.2");
  EXPECT_EQ(format_millis(Millis(1500)), "1500ms");
}

TEST(YamlReader, EditDistanceCountsTyposAndTranspositions) {
  EXPECT_EQ(edit_distance("lb_policy", "lb_policy"), 0u);
  EXPECT_EQ(edit_distance("lb_polcy", "lb_policy"), 1u);
  EXPECT_EQ(edit_distance("wokrers", "workers"), 1u);
  EXPECT_EQ(edit_distance("Workers", "workers"), 0u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(YamlReader, ClosestMatchIgnoresDistantWords) {
  const std::vector<std::string_view> keys = {"name", "address", "routes"};
  EXPECT_EQ(closest_match("adress", keys), "address");
  EXPECT_EQ(closest_match("nam", keys), "name");
  EXPECT_EQ(closest_match("x", keys), "");
  EXPECT_EQ(closest_match("listeners", keys), "");
  EXPECT_EQ(closest_match("addresses", keys), "address");
  EXPECT_EQ(closest_match("na", keys), "");
}

// ---- MapReader ----------------------------------------------------------------------------------

TEST(YamlReader, MapReaderKnowsWhereKeysAndValuesAre) {
  const std::string text = "outer:\n  first: 1\n  second:\n    - x\n";
  const YAML::Node root = YAML::Load(text);
  Diagnostics diag("test.yaml", text);
  const YAML::Node outer = root["outer"];
  MapReader map(Located{outer, outer.Mark(), "outer"}, {"first", "second", "third"}, &diag);
  ASSERT_TRUE(map.ok());
  EXPECT_TRUE(diag.empty());
  // The key "second" is on line 3 (0-based 2); its block sequence starts on the next line.
  EXPECT_EQ(map.key_mark("second").line, 2);
  EXPECT_EQ(map.key_mark("second").column, 2);
  EXPECT_EQ(map.get("second")->mark.line, 3);
  // An absent key points at the map.
  EXPECT_EQ(map.key_mark("third").line, outer.Mark().line);
  EXPECT_EQ(map.key_mark("third").column, outer.Mark().column);
  // A cross check prefers the later key, then the earlier one, then the map.
  EXPECT_EQ(cross_check_mark(map, "second", "first").line, 3);
  EXPECT_EQ(cross_check_mark(map, "third", "first").line, 1);
  EXPECT_EQ(cross_check_mark(map, "third", "missing").line, outer.Mark().line);
}

}  // namespace
}  // namespace h2mesh::config

namespace h2mesh::config {
namespace {

// ---- find_quoted_scalars ----------------------------------------------------------------------

TEST(QuotedScalars, FindsEveryQuotedScalarWithItsPosition) {
  const auto q = find_quoted_scalars(
      "a: \"x\"\n"
      "b: ['y', \"z\"]\n"
      "c:\n"
      "  - 'it''s'\n"
      "\"k\": 1\n");
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q[0].line, 0);
  EXPECT_EQ(q[0].column, 3);
  EXPECT_EQ(q[1].line, 1);
  EXPECT_EQ(q[1].column, 4);
  EXPECT_EQ(q[1].quote, '\'');
  EXPECT_EQ(q[2].column, 9);
  EXPECT_EQ(q[3].line, 3);
  EXPECT_EQ(q[3].column, 4);
  EXPECT_TRUE(q[3].closed) << "'' is a quote inside the string";
  EXPECT_EQ(q[4].line, 4);
  EXPECT_EQ(q[4].column, 0);
  for (const auto& s : q) EXPECT_TRUE(s.closed);
}

TEST(QuotedScalars, QuotesInsidePlainScalarsCommentsAndBlockScalarsDoNotCount) {
  const auto q = find_quoted_scalars(
      "name: it's plain\n"
      "size: 5 # don't count this\n"
      "# nor \"this\n"
      "text: |\n"
      "  a block with ' and \" in it\n"
      "\n"
      "  still \"the block\n"
      "next: a, \"b\n"
      "last: \"c\"\n");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].line, 8);
  EXPECT_EQ(q[0].column, 6);
  EXPECT_TRUE(q[0].closed);
}

TEST(QuotedScalars, UnterminatedQuoteIsTheLastOneFound) {
  const auto q = find_quoted_scalars("a: \"ok\"\nb: \"open\nc: 1\nd: 2\n");
  ASSERT_EQ(q.size(), 2u);
  EXPECT_FALSE(q[1].closed);
  EXPECT_EQ(q[1].line, 1);
  EXPECT_EQ(q[1].column, 3);
}

TEST(QuotedScalars, EscapesAndLineBreaksInsideDoubleQuotes) {
  const auto q = find_quoted_scalars("a: \"x \\\" y\\\n  z\"\nb: 'p\n  q'\n");
  ASSERT_EQ(q.size(), 2u);
  EXPECT_TRUE(q[0].closed) << "\\\" does not close the string";
  EXPECT_EQ(q[0].end_line, 1);
  EXPECT_EQ(q[1].line, 2);
  EXPECT_EQ(q[1].end_line, 3);
  EXPECT_TRUE(q[1].closed);
}

}  // namespace
}  // namespace h2mesh::config
