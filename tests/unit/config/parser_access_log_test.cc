// access_log: defaults, every key, and the mistakes a user makes with it, each at its line.

#include <gtest/gtest.h>

#include "config/parser.h"
#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

TEST(ConfigParserAccessLog, OffWithoutTheBlock) {
  auto result = parse_with_base("");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_FALSE(result.config->access_log.has_value());
}

TEST(ConfigParserAccessLog, PathAloneGivesJsonWithEveryFieldForEveryCall) {
  auto result = parse_with_base(R"(
access_log: { path: stdout }
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  ASSERT_TRUE(result.config->access_log.has_value());
  const AccessLog& log = *result.config->access_log;
  EXPECT_EQ(log.path, "stdout");
  EXPECT_EQ(log.format, AccessLog::Format::Json);
  EXPECT_TRUE(log.fields.empty());
  EXPECT_EQ(log.sample_ratio, 1.0);
  EXPECT_EQ(log.queue_bytes, 1 << 20);
}

TEST(ConfigParserAccessLog, EveryKey) {
  auto result = parse_with_base(R"(
access_log:
  path: /var/log/h2mesh/access.log
  format: text
  fields: [time, method, grpc_status, upstream, duration, trace_id]
  sample_ratio: 0.25
  queue_bytes: 4MiB
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const AccessLog& log = *result.config->access_log;
  EXPECT_EQ(log.path, "/var/log/h2mesh/access.log");
  EXPECT_EQ(log.format, AccessLog::Format::Text);
  EXPECT_EQ(log.fields, (std::vector<std::string>{"time", "method", "grpc_status", "upstream",
                                                  "duration", "trace_id"}));
  EXPECT_EQ(log.sample_ratio, 0.25);
  EXPECT_EQ(log.queue_bytes, 4 << 20);
}

TEST(ConfigParserAccessLog, PathIsRequired) {
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
access_log:
  format: json
)"),
                            2, "missing required key 'path'", "stdout"));
}

TEST(ConfigParserAccessLog, UnknownFieldSuggestsTheClosestName) {
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
access_log:
  path: stdout
  fields:
    - method
    - grpc_stauts
)"),
                            5, "unknown field 'grpc_stauts'", "grpc_status"));
}

TEST(ConfigParserAccessLog, FieldListedTwice) {
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
access_log:
  path: stdout
  fields: [method,
           method]
)"),
                            4, "'method' is listed twice"));
}

TEST(ConfigParserAccessLog, BadValuesAreReportedWhereTheyAre) {
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
access_log:
  path: stdout
  format: xml
)"),
                            3, "xml", "json"));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
access_log:
  path: stdout
  sample_ratio: 1.5
)"),
                            3, "sample_ratio"));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
access_log:
  path: stdout
  queue_bytes: 1KiB
)"),
                            3, "queue_bytes"));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
access_log:
  path: "~/access.log"
)"),
                            2, "not expanded"));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
access_log:
  path: stdout
  fields: []
)"),
                            3, "field"));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
access_log:
  path: stdout
  sampel_ratio: 0.5
)"),
                            3, "sampel_ratio", "sample_ratio"));
}

}  // namespace
}  // namespace h2mesh::config
