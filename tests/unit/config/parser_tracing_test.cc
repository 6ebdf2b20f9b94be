#include "config/tracing_reader.h"
#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

TEST(ConfigParserTracing, AbsentBlockLeavesTracingOff) {
  auto result = parse_with_base("");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_FALSE(result.config->tracing.enabled);
}

TEST(ConfigParserTracing, EveryKeyIsRead) {
  auto result = parse_with_base(R"(tracing:
  otlp_endpoint: http://otel-collector.observability:4318/v1/traces
  sample_ratio: 0.01
  service_name: edge
  batch_size: 256
  batch_interval: 500ms
  queue_size: 4096
  export_timeout: 2s
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const Tracing& t = result.config->tracing;
  EXPECT_TRUE(t.enabled);
  EXPECT_EQ(t.otlp_host, "otel-collector.observability");
  EXPECT_EQ(t.otlp_port, 4318);
  EXPECT_EQ(t.otlp_path, "/v1/traces");
  EXPECT_DOUBLE_EQ(t.sample_ratio, 0.01);
  EXPECT_EQ(t.service_name, "edge");
  EXPECT_EQ(t.batch_size, 256u);
  EXPECT_EQ(t.batch_interval, Millis(500));
  EXPECT_EQ(t.queue_size, 4096u);
  EXPECT_EQ(t.export_timeout, Millis(2000));
}

TEST(ConfigParserTracing, EndpointDefaultsAndIpv6) {
  Tracing t;
  std::string error;
  ASSERT_TRUE(parse_otlp_endpoint("http://[::1]:9999", &t, &error)) << error;
  EXPECT_EQ(t.otlp_host, "::1");
  EXPECT_EQ(t.otlp_port, 9999);
  EXPECT_EQ(t.otlp_path, "/v1/traces");
  ASSERT_TRUE(parse_otlp_endpoint("http://jaeger/api/traces", &t, &error)) << error;
  EXPECT_EQ(t.otlp_port, 4318);
  EXPECT_EQ(t.otlp_path, "/api/traces");
}

TEST(ConfigParserTracing, BadEndpointIsReportedAtItsLine) {
  EXPECT_TRUE(has_one_error(parse_with_base(R"(tracing:
  otlp_endpoint: https://collector:4318/v1/traces
)"), 2, "https is not supported"));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(tracing:
  otlp_endpoint: http://collector:99999/v1/traces
)"), 2, "bad port"));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(tracing:
  sample_ratio: 0.5
)"), 2, "missing required key 'otlp_endpoint'"));
}

TEST(ConfigParserTracing, BadValuesAreReportedAtTheirLines) {
  EXPECT_TRUE(has_one_error(parse_with_base(R"(tracing:
  otlp_endpoint: http://127.0.0.1:4318/v1/traces
  sample_ratio: 1.5
)"), 3, "sample_ratio"));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(tracing:
  otlp_endpoint: http://127.0.0.1:4318/v1/traces
  queue_size: 64
  batch_size: 128
)"), 4, "larger than queue_size"));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(tracing:
  otlp_endpoint: http://127.0.0.1:4318/v1/traces
  sample_rate: 0.5
)"), 3, "sample_rate", "sample_ratio"));
}

}  // namespace
}  // namespace h2mesh::config
