// Texts on which yaml-cpp 0.7's YAML::LoadAll never returns (its parser stops making progress
// at a token it leaves behind, and memory grows with every empty document it adds) are refused
// with the position of that token, fast; texts that merely look similar still parse.

#include "config/yaml_guard.h"

#include <gtest/gtest.h>

#include <string>

#include "config/parser.h"

namespace h2mesh::config {
namespace {

struct Trapped {
  std::string text;
  int line, column;
  char token;  // the token yaml-cpp cannot go past
};

void expect_trapped(const Trapped& c) {
  SCOPED_TRACE(testing::Message() << "text: \"" << c.text << "\"");
  auto trap = find_yaml_parser_trap(c.text);
  ASSERT_TRUE(trap.has_value());
  EXPECT_EQ(trap->line, c.line);
  EXPECT_EQ(trap->column, c.column);
  EXPECT_EQ(trap->message,
            std::string("unexpected '") + c.token + "' after the document's top-level value");
  EXPECT_FALSE(trap->hint.empty());
}

TEST(YamlGuard, DocumentStartingWithCommaIsFound) {
  for (const Trapped& c : {Trapped{",a", 1, 1, ','}, Trapped{"# comment\n\n  , x", 3, 3, ','},
                           Trapped{"a: 1\n---\n,", 3, 1, ','}, Trapped{"--- ,", 1, 5, ','},
                           Trapped{"%YAML 1.2\n---\n!tag &a ,", 3, 9, ','},
                           Trapped{"a: 1\n...\n,", 3, 1, ','}, Trapped{"&anchor, x", 1, 8, ','}})
    expect_trapped(c);
}

TEST(YamlGuard, CommaAfterTheTopLevelValueIsFound) {
  // The value ends before the text does; what follows is read as a new document that yaml-cpp
  // cannot start. "a run of ' quotes, then a line starting with ','" is the first of these.
  for (const Trapped& c :
       {Trapped{"'a'\n,", 2, 1, ','}, Trapped{"\"a\"\n, b", 2, 1, ','},
        Trapped{"'it''s'\n, more", 2, 1, ','}, Trapped{"'a' ,", 1, 5, ','},
        Trapped{"- a\n- b\n,", 3, 1, ','}, Trapped{"  a: 1\n  b: 2\n, c", 3, 1, ','},
        Trapped{"[a, b]\n,", 2, 1, ','}, Trapped{"{a: 1}\n,", 2, 1, ','},
        Trapped{"|\n  text\n,", 3, 1, ','}, Trapped{"&x a\n,", 2, 1, ','},
        Trapped{"'a'\n---\nb: 1\n---\n'c'\n,", 6, 1, ','}})
    expect_trapped(c);
}

TEST(YamlGuard, KeyWithNoMapAfterTheTopLevelValueIsFound) {
  // yaml-cpp scans this '?' as a key but opens no map for it (a conforming parser reads
  // "&x a\n? b" as the scalar "a ? b").
  for (const Trapped& c : {Trapped{"&x a\n? b", 2, 1, '?'}, Trapped{"[]a\n? b", 2, 1, '?'},
                           Trapped{"''a\n? b", 2, 1, '?'}, Trapped{"&x |\n? ", 2, 1, '?'}})
    expect_trapped(c);
}

TEST(YamlGuard, FuzzerInputIndentedMapThenComma) {
  // Found by fuzz_config (-timeout=3): a map indented by two columns ends at the unindented
  // ',' of line 2, which yaml-cpp then cannot go past. Bytes that are not UTF-8 included.
  static constexpr char kInput[] =
      "  !\xd7\x9e\x9ewo  T: GOAWAYre\n,og_le\x9e\x9e$\x9e\x9e\x9e\x9e\xff\xff\xff\xff\xff\xff\xff"
      "\xff\x9e\x9e\x9e\x9e\x9e\x9e\x9e\x9e\x9eve\x9e\x9e\x9e\x9e\xd1l: inf\x9e";
  const std::string text(kInput, sizeof kInput - 1);
  expect_trapped({text, 2, 1, ','});
  ParseResult r = parse_config(text, "h2mesh.yaml");
  EXPECT_FALSE(r.config.has_value());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_EQ(r.errors[0].column, 1);
  EXPECT_EQ(r.errors[0].message,
            "invalid YAML: unexpected ',' after the document's top-level value");
}

TEST(YamlGuard, PositionCountsAsYamlCppDoesAfterAByteOrderMark) {
  // yaml-cpp skips the byte order mark; the token is still the one named.
  expect_trapped({"\xEF\xBB\xBF'\xC3\xA9t\xC3\xA9'\n,", 2, 1, ','});
  expect_trapped({"\xEF\xBB\xBF'\xC3\xA9' ,", 1, 6, ','});
}

TEST(YamlGuard, ControlCharactersAreRefused) {
  // The fuzzer's input: an anchor, a NUL, bytes, then ','. The NUL is found first.
  static constexpr char kInput[] = "&workers:g_NUworkLL%\0\x9f,nteec";
  const std::string text(kInput, sizeof kInput - 1);
  auto trap = find_yaml_parser_trap(text);
  ASSERT_TRUE(trap.has_value());
  EXPECT_EQ(trap->line, 1);
  EXPECT_EQ(trap->column, 21);
  EXPECT_EQ(trap->message, "a control character is not allowed in YAML text");
  EXPECT_FALSE(find_yaml_parser_trap("a: 1\r\n\tb: 2\n").has_value()) << "tab and CR are text";
  ParseResult r = parse_config(text, "h2mesh.yaml");
  EXPECT_FALSE(r.config.has_value());
}

TEST(YamlGuard, TextsThatOnlyLookSimilarAreLeftToTheParser) {
  // A ',' inside brackets or quotes, or one that continues a plain scalar ("a\n," is "a ,"),
  // or one where yaml-cpp reports an error itself ("a: 1\n," is "end of map not found").
  for (const char* text :
       {"a: [1, 2]", "a: {b: 1, c: 2}", "a: 1\n,", "a:\n  ,b: 1", "a: \",\"", "a: ','",
        "--- # x\na: 1", "---a: ,", "", "a\n,", "- a\n  ,", "- [a, b]\n- c", "'a'\n---\n'b'",
        "a: 1\n---\nb: 2\n", "a: |\n  x\n  ,\n", "? a\n: b\n", "'a'\n? b"})
    EXPECT_FALSE(find_yaml_parser_trap(text).has_value()) << text;
}

TEST(YamlGuard, ConfigStartingWithCommaIsAnErrorNotAHang) {
  // The shape of the fuzzer's first input: a real config whose first byte became ','.
  ParseResult r = parse_config(",workers: 1\nlog_level: info\n", "h2mesh.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(r.errors[0].line, 1);
  EXPECT_EQ(r.errors[0].column, 1);
  EXPECT_EQ(r.errors[0].message,
            "invalid YAML: unexpected ',' after the document's top-level value");
  EXPECT_NE(r.errors[0].hint.find("inside [ ] or { }"), std::string::npos) << r.errors[0].hint;
}

TEST(YamlGuard, ConfigWithQuotedValueThenCommaIsAnErrorNotAHang) {
  // A config that is one quoted string, then a line starting with ','.
  ParseResult r = parse_config("'listeners: []'\n, clusters: []\n", "h2mesh.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_EQ(r.errors[0].column, 1);
}

}  // namespace
}  // namespace h2mesh::config
