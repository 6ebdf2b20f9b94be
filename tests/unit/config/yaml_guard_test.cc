// Texts that would make yaml-cpp 0.7 loop for ever with growing memory (found by fuzz_config)
// are refused with a position, fast; texts that merely look similar still parse.

#include "config/yaml_guard.h"

#include <gtest/gtest.h>

#include <string>

#include "config/parser.h"

namespace h2mesh::config {
namespace {

TEST(YamlGuard, DocumentStartingWithCommaIsFound) {
  struct Case {
    const char* text;
    int line, column;
  };
  for (const Case& c : {Case{",a", 1, 1}, Case{"# comment\n\n  , x", 3, 3},
                        Case{"a: 1\n---\n,", 3, 1}, Case{"--- ,", 1, 5},
                        Case{"%YAML 1.2\n---\n!tag &a ,", 3, 9}, Case{"a: 1\n...\n,", 3, 1}}) {
    auto trap = find_yaml_parser_trap(c.text);
    ASSERT_TRUE(trap.has_value()) << c.text;
    EXPECT_EQ(trap->line, c.line) << c.text;
    EXPECT_EQ(trap->column, c.column) << c.text;
  }
}

TEST(YamlGuard, AnchorEndsAtAFlowIndicator) {
  auto trap = find_yaml_parser_trap("&anchor, x");
  ASSERT_TRUE(trap.has_value());
  EXPECT_EQ(trap->column, 8);
}

TEST(YamlGuard, ControlCharactersAreRefused) {
  // The fuzzer's input that made yaml-cpp loop: an anchor, a NUL, bytes, then ','.
  static constexpr char kInput[] = "&workers:g_NUworkLL%\0\x9f,nteec";
  const std::string text(kInput, sizeof kInput - 1);
  auto trap = find_yaml_parser_trap(text);
  ASSERT_TRUE(trap.has_value());
  EXPECT_EQ(trap->line, 1);
  EXPECT_EQ(trap->column, 21);
  EXPECT_STREQ(trap->message, "a control character is not allowed in YAML text");
  EXPECT_FALSE(find_yaml_parser_trap("a: 1\r\n\tb: 2\n").has_value()) << "tab and CR are text";
  ParseResult r = parse_config(text, "h2mesh.yaml");
  EXPECT_FALSE(r.config.has_value());
}

TEST(YamlGuard, CommasInsideDocumentsAreLeftToTheParser) {
  for (const char* text : {"a: [1, 2]", "a: 1\n,", "a:\n  ,b: 1", "a: \",\"", "--- # x\na: 1",
                           "---a: ,", ""})
    EXPECT_FALSE(find_yaml_parser_trap(text).has_value()) << text;
}

TEST(YamlGuard, ConfigStartingWithCommaIsAnErrorNotAHang) {
  // The shape of the fuzzer's input: a real config whose first byte became ','.
  ParseResult r = parse_config(",workers: 1\nlog_level: info\n", "h2mesh.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(r.errors[0].line, 1);
  EXPECT_EQ(r.errors[0].column, 1);
  EXPECT_EQ(r.errors[0].message, "invalid YAML: a YAML document cannot start with ','");
}

}  // namespace
}  // namespace h2mesh::config
