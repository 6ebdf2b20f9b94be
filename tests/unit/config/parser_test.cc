#include "config/parser.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

// ---- Valid configurations ---------------------------------------------------------------------

// Every key set to a value other than its default; line numbers as visible below.
constexpr std::string_view kFullConfig = R"(
workers: 2
log_level: warn
drain_timeout: 45s
admin:
  enabled: false
  address: "127.0.0.1:9902"
buffers:
  stream_window_bytes: 2MiB
  connection_window_bytes: 32MiB
listeners:
  - name: public
    address: "0.0.0.0:50051"
    max_concurrent_streams: 512
    routes:
      - match:
          authority: "greeter.example:50051"
          prefix: "/helloworld.Greeter/"
        cluster: greeter
      - match:
          path: "/helloworld.Greeter/SayHello"
        cluster: other
      - cluster: greeter
  - name: internal
    address: "[::]:0"
    routes:
      - cluster: other
clusters:
  - name: greeter
    lb_policy: least_request
    connect_timeout: 250ms
    max_connections_per_endpoint: 4
    max_pending_calls: 100
    reconnect_backoff: { base: 50ms, max: 2m }
    endpoints:
      - "127.0.0.1:50052"
      - { address: "[::1]:50053", weight: 3 }
  - name: other
    lb_policy: random
    endpoints: ["10.0.0.1:1"]
)";

TEST(ConfigParser, FullConfigParsesTopLevelSettings) {
  auto result = parse(kFullConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Config& c = *result.config;
  EXPECT_EQ(c.source, "test.yaml");
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.log_level, "warn");
  EXPECT_EQ(c.drain_timeout, seconds(45));
  EXPECT_FALSE(c.admin.enabled);
  EXPECT_EQ(c.admin.address, (SocketAddress{"127.0.0.1", 9902}));
  EXPECT_EQ(c.buffers.stream_window_bytes, 2u << 20);
  EXPECT_EQ(c.buffers.connection_window_bytes, 32u << 20);
}

TEST(ConfigParser, FullConfigParsesListenersAndRoutes) {
  auto result = parse(kFullConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Config& c = *result.config;
  ASSERT_EQ(c.listeners.size(), 2u);
  const Listener& pub = c.listeners[0];
  EXPECT_EQ(pub.name, "public");
  EXPECT_EQ(pub.address, (SocketAddress{"0.0.0.0", 50051}));
  EXPECT_EQ(pub.max_concurrent_streams, 512u);
  ASSERT_EQ(pub.routes.size(), 3u);
  ASSERT_TRUE(pub.routes[0].match.has_value());
  EXPECT_EQ(pub.routes[0].match->authority, "greeter.example:50051");
  EXPECT_EQ(pub.routes[0].match->prefix, "/helloworld.Greeter/");
  EXPECT_EQ(pub.routes[0].match->path, "");
  EXPECT_EQ(pub.routes[0].cluster, "greeter");
  EXPECT_EQ(pub.routes[0].line, 15);
  ASSERT_TRUE(pub.routes[1].match.has_value());
  EXPECT_EQ(pub.routes[1].match->authority, "");
  EXPECT_EQ(pub.routes[1].match->path, "/helloworld.Greeter/SayHello");
  EXPECT_EQ(pub.routes[1].cluster, "other");
  EXPECT_EQ(pub.routes[1].line, 19);
  EXPECT_FALSE(pub.routes[2].match.has_value());
  EXPECT_EQ(pub.routes[2].cluster, "greeter");
  EXPECT_EQ(pub.routes[2].line, 22);
  const Listener& internal = c.listeners[1];
  EXPECT_EQ(internal.name, "internal");
  EXPECT_EQ(internal.address, (SocketAddress{"::", 0}));
  EXPECT_TRUE(internal.address.is_ipv6());
  EXPECT_EQ(internal.max_concurrent_streams, 1024u);
}

TEST(ConfigParser, FullConfigParsesClustersAndEndpoints) {
  auto result = parse(kFullConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Config& c = *result.config;
  ASSERT_EQ(c.clusters.size(), 2u);
  const Cluster& greeter = c.clusters[0];
  EXPECT_EQ(greeter.name, "greeter");
  EXPECT_EQ(greeter.lb_policy, LbPolicy::LeastRequest);
  EXPECT_EQ(greeter.connect_timeout, Millis(250));
  EXPECT_EQ(greeter.max_connections_per_endpoint, 4u);
  EXPECT_EQ(greeter.max_pending_calls, 100u);
  EXPECT_EQ(greeter.reconnect_backoff_base, Millis(50));
  EXPECT_EQ(greeter.reconnect_backoff_max, minutes(2));
  ASSERT_EQ(greeter.endpoints.size(), 2u);
  EXPECT_EQ(greeter.endpoints[0].address, (SocketAddress{"127.0.0.1", 50052}));
  EXPECT_EQ(greeter.endpoints[0].weight, 1u);
  EXPECT_EQ(greeter.endpoints[1].address, (SocketAddress{"::1", 50053}));
  EXPECT_EQ(greeter.endpoints[1].weight, 3u);
  EXPECT_EQ(c.clusters[1].lb_policy, LbPolicy::Random);
  EXPECT_EQ(c.find_cluster("other"), &c.clusters[1]);
}

TEST(ConfigParser, MinimalConfigGetsDefaults) {
  auto result = parse(kListenerAndCluster);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Config& c = *result.config;
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.drain_timeout, seconds(30));
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.address, (SocketAddress{"127.0.0.1", 9901}));
  EXPECT_EQ(c.buffers.stream_window_bytes, 1u << 20);
  EXPECT_EQ(c.buffers.connection_window_bytes, 16u << 20);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].max_concurrent_streams, 1024u);
  ASSERT_EQ(c.listeners[0].routes.size(), 1u);
  EXPECT_FALSE(c.listeners[0].routes[0].match.has_value());
  ASSERT_EQ(c.clusters.size(), 1u);
  const Cluster& cluster = c.clusters[0];
  EXPECT_EQ(cluster.lb_policy, LbPolicy::RoundRobin);
  EXPECT_EQ(cluster.connect_timeout, seconds(1));
  EXPECT_EQ(cluster.max_connections_per_endpoint, 8u);
  EXPECT_EQ(cluster.max_pending_calls, 1024u);
  EXPECT_EQ(cluster.reconnect_backoff_base, Millis(100));
  EXPECT_EQ(cluster.reconnect_backoff_max, seconds(5));
  ASSERT_EQ(cluster.endpoints.size(), 1u);
  EXPECT_EQ(cluster.endpoints[0].weight, 1u);
}

TEST(ConfigParser, RangeLimitsAreAccepted) {
  auto result = parse_with_base(R"(
workers: 256
drain_timeout: 0s
buffers:
  stream_window_bytes: 64KiB
  connection_window_bytes: 2147483647
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(result.config->workers, 256u);
  EXPECT_EQ(result.config->drain_timeout, Millis(0));
  EXPECT_EQ(result.config->buffers.stream_window_bytes, 65536u);
  EXPECT_EQ(result.config->buffers.connection_window_bytes, 2147483647u);
}

TEST(ConfigParser, ClusterRangeLimitsAreAccepted) {
  auto result = parse_cluster(R"(
    max_connections_per_endpoint: 1024
    max_pending_calls: 0
    reconnect_backoff: { base: 1ms, max: 1ms }
    endpoints:
      - { address: "10.0.0.1:65535", weight: 1000 }
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const Cluster& cluster = result.config->clusters[0];
  EXPECT_EQ(cluster.max_connections_per_endpoint, 1024u);
  EXPECT_EQ(cluster.max_pending_calls, 0u);
  EXPECT_EQ(cluster.reconnect_backoff_base, Millis(1));
  EXPECT_EQ(cluster.endpoints[0].address.port, 65535);
  EXPECT_EQ(cluster.endpoints[0].weight, 1000u);
}

TEST(ConfigParser, QuotedNumbersAndCapitalizedBooleansAreAccepted) {
  auto result = parse_with_base(R"(
workers: "4"
admin:
  enabled: False
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(result.config->workers, 4u);
  EXPECT_FALSE(result.config->admin.enabled);
}

TEST(ConfigParser, EndpointStatsRetentionDefaultsToTwoMinutesAndMayBeZero) {
  auto defaults = parse_with_base("\n");
  ASSERT_TRUE(defaults.ok()) << dump(defaults);
  EXPECT_EQ(defaults.config->admin.endpoint_stats_retention, Millis(120000));
  auto zero = parse_with_base(R"(
admin:
  endpoint_stats_retention: 0s
)");
  ASSERT_TRUE(zero.ok()) << dump(zero);
  EXPECT_EQ(zero.config->admin.endpoint_stats_retention, Millis(0));
  EXPECT_TRUE(has_one_error(parse_with_base(R"(
admin:
  endpoint_stats_retention: soon
)"),
                            2, "admin.endpoint_stats_retention"));
}

TEST(ConfigParser, SeveralListenersMayUsePortZero) {
  auto result = parse(R"(
listeners:
  - name: a
    address: "127.0.0.1:0"
    routes: [{ cluster: c }]
  - name: b
    address: "127.0.0.1:0"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  EXPECT_TRUE(result.ok()) << dump(result);
}

TEST(ConfigParser, AnchorsAndAliasesAreResolved) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes: &routes
      - cluster: greeter
  - name: second
    address: "127.0.0.1:0"
    routes: *routes
clusters:
  - name: greeter
    endpoints: ["127.0.0.1:50052"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(result.config->listeners[1].routes[0].cluster, "greeter");
}

TEST(ConfigParser, AdminMayShareAListenerAddressWhenDisabled) {
  auto result = parse(R"(
admin:
  enabled: false
  address: "127.0.0.1:9000"
listeners:
  - name: public
    address: "127.0.0.1:9000"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  EXPECT_TRUE(result.ok()) << dump(result);
}

// ---- Document-level errors --------------------------------------------------------------------

TEST(ConfigParser, YamlSyntaxErrorGivesLineAndColumn) {
  auto result = parse(R"(
workers: 2
listeners: [ { name: a
clusters: []
)");
  ASSERT_EQ(result.errors.size(), 1u) << dump(result);
  EXPECT_NE(result.errors[0].message.find("invalid YAML"), std::string::npos) << dump(result);
  EXPECT_GE(result.errors[0].line, 3) << dump(result);
  EXPECT_GT(result.errors[0].column, 0);
  EXPECT_FALSE(result.config.has_value());
}

TEST(ConfigParser, UnterminatedQuoteIsReportedAtTheQuote) {
  // yaml-cpp alone says "end of map not found" at the end of the document.
  auto result = parse(R"(
workers: 2
listeners:
  - name: public
    address: "127.0.0.1:9000
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 4, "unterminated quoted string", "closing \""));
  EXPECT_EQ(result.errors[0].column, 14) << dump(result);
}

TEST(ConfigParser, UnterminatedSingleQuoteIsReportedAtTheQuote) {
  auto result = parse("workers: 2\nlog_level: 'info\n");
  ASSERT_TRUE(has_one_error(result, 2, "unterminated quoted string", "add the closing '"));
  EXPECT_EQ(result.errors[0].column, 12) << dump(result);
}

TEST(ConfigParser, ApostropheInACommentIsNotTakenForAQuote) {
  // A real syntax error elsewhere keeps yaml-cpp's message and position.
  auto result = parse(R"(
workers: 2  # don't change
listeners: [ { name: a
)");
  ASSERT_EQ(result.errors.size(), 1u) << dump(result);
  EXPECT_EQ(result.errors[0].message.find("unterminated"), std::string::npos) << dump(result);
  EXPECT_NE(result.errors[0].message.find("invalid YAML"), std::string::npos) << dump(result);
}

TEST(ConfigParser, QuoteClosedByTheNextStringIsReportedAtTheQuote) {
  // The quote missing on line 2 is "closed" by the opening quote of line 3: yaml-cpp fails
  // later; the string ran over a key, so the error points at where it opened.
  auto result = parse(R"(
listeners:
  - name: "public
    address: "127.0.0.1:9000"
    routes: [{ cluster: c }]
)");
  ASSERT_TRUE(has_one_error(result, 2, "unterminated quoted string", "runs on to line 3, over keys"));
  EXPECT_EQ(result.errors[0].column, 11) << dump(result);
}

TEST(ConfigParser, MultiLineQuotedStringIsValidYaml) {
  // A quoted string may run over lines; only one that swallows keys before an error is suspect.
  auto result = parse(R"(
listeners:
  - name: "pub
      lic"
    address: "127.0.0.1:9000"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(result.config->listeners[0].name, "pub lic");
}

TEST(ConfigParser, BadIndentationIsASyntaxErrorNotAnException) {
  auto result = parse(R"(
workers: 2
  log_level: info
)");
  ASSERT_TRUE(has_one_error(result, 2, "invalid YAML", "indentation"));
}

TEST(ConfigParser, TabIndentationIsASyntaxError) {
  auto result = parse("admin:\n\tenabled: true\n");
  ASSERT_EQ(result.errors.size(), 1u) << dump(result);
  EXPECT_NE(result.errors[0].message.find("invalid YAML"), std::string::npos) << dump(result);
  EXPECT_EQ(result.errors[0].line, 2) << dump(result);
}

TEST(ConfigParser, DeeplyNestedDocumentIsAnErrorNotACrash) {
  std::string text = "workers: ";
  for (int i = 0; i < 100000; ++i) text += "[";
  auto result = parse(text);
  ASSERT_TRUE(has_one_error(result, 1, "nested too deeply"));
}

TEST(ConfigParser, BinaryGarbageIsAnErrorNotAnException) {
  const std::string garbage("\x00\xff\x10: [\x80\n\t- {", 11);
  auto result = parse_config(garbage, "test.yaml");
  EXPECT_FALSE(result.errors.empty());
  EXPECT_FALSE(result.config.has_value());
}

TEST(ConfigParser, ByteOrderMarkDoesNotShiftPositions) {
  auto result = parse("\xEF\xBB\xBFlisteners:\n  -\nclusters: 3\n");
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 2);
  EXPECT_EQ(result.errors[0].column, 3);
  EXPECT_EQ(result.errors[1].line, 3);
  EXPECT_EQ(result.errors[1].column, 11);
}

TEST(ConfigParser, EmptyDocumentIsAnError) {
  ASSERT_TRUE(has_one_error(parse(""), 1, "empty", "listener"));
}

TEST(ConfigParser, CommentOnlyDocumentIsEmpty) {
  ASSERT_TRUE(has_one_error(parse("# nothing here\n\n"), 1, "empty"));
}

TEST(ConfigParser, ExplicitNullDocumentIsEmpty) {
  ASSERT_TRUE(has_one_error(parse("~\n"), 1, "empty"));
}

TEST(ConfigParser, SequenceDocumentIsNotAMap) {
  auto result = parse(R"(
- listeners
- clusters
)");
  ASSERT_TRUE(has_one_error(result, 1, "top level must be a map, got a sequence", "listeners:"));
}

TEST(ConfigParser, ScalarDocumentIsNotAMap) {
  ASSERT_TRUE(has_one_error(parse("\n\nhello\n"), 2, "top level must be a map, got 'hello'"));
}

TEST(ConfigParser, SecondYamlDocumentIsRejected) {
  std::string text(kListenerAndCluster);
  text = "---\n" + text + "---\nworkers: 3\n";
  ASSERT_TRUE(has_one_error(parse(text), 11, "only one YAML document", "---"));
}

TEST(ConfigParser, MissingListenersAndClustersAreBothReported) {
  auto result = parse(R"(
workers: 1
)");
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 1);
  EXPECT_NE(result.errors[0].message.find("missing required key 'listeners'"), std::string::npos);
  EXPECT_EQ(result.errors[1].line, 1);
  EXPECT_NE(result.errors[1].message.find("missing required key 'clusters'"), std::string::npos);
}

TEST(ConfigParser, EmptyListenerListIsAnError) {
  auto result = parse(R"(
listeners: []
clusters:
  - name: greeter
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 1, "at least one listener is required"));
}

TEST(ConfigParser, EmptyClusterListIsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes: [{ cluster: greeter }]
clusters: []
)");
  // The route's cluster is not also reported: the cluster list is the real problem.
  ASSERT_TRUE(has_one_error(result, 5, "at least one cluster is required"));
}

// ---- Reporting --------------------------------------------------------------------------------

TEST(ConfigParser, EveryErrorIsReportedInFileOrder) {
  auto result = parse(R"(
workers: lots
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - cluster: nowhere
clusters:
  - name: greeter
    lb_polcy: random
    endpoints: ["greeter.local:1"]
log_level: loud
)");
  ASSERT_EQ(result.errors.size(), 5u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 1);
  EXPECT_NE(result.errors[0].message.find("workers"), std::string::npos);
  EXPECT_EQ(result.errors[1].line, 6);
  EXPECT_NE(result.errors[1].message.find("unknown cluster 'nowhere'"), std::string::npos);
  EXPECT_EQ(result.errors[2].line, 9);
  EXPECT_NE(result.errors[2].message.find("lb_polcy"), std::string::npos);
  EXPECT_EQ(result.errors[3].line, 10);
  EXPECT_NE(result.errors[3].hint.find("DNS discovery"), std::string::npos);
  EXPECT_EQ(result.errors[4].line, 11);
  EXPECT_NE(result.errors[4].message.find("log_level"), std::string::npos);
  EXPECT_FALSE(result.config.has_value());
}

TEST(ConfigParser, ErrorsCarryTheSourceName) {
  auto result = parse_config("workers: 1\n", "/etc/h2mesh/h2mesh.yaml");
  ASSERT_FALSE(result.errors.empty());
  for (const auto& error : result.errors) EXPECT_EQ(error.file, "/etc/h2mesh/h2mesh.yaml");
}

TEST(ConfigError, ToStringIncludesPositionMessageAndHint) {
  ConfigError error{"h2mesh.yaml", 12, 5, "clusters[0]: unknown key 'lb_polcy'",
                    "did you mean 'lb_policy'?"};
  EXPECT_EQ(error.to_string(),
            "h2mesh.yaml:12:5: error: clusters[0]: unknown key 'lb_polcy' "
            "(hint: did you mean 'lb_policy'?)");
}

TEST(ConfigError, ToStringOmitsAnEmptyHint) {
  ConfigError error{"h2mesh.yaml", 3, 1, "the configuration is empty", ""};
  EXPECT_EQ(error.to_string(), "h2mesh.yaml:3:1: error: the configuration is empty");
}

TEST(LbPolicy, NamesMatchTheYamlSpelling) {
  EXPECT_STREQ(lb_policy_name(LbPolicy::RoundRobin), "round_robin");
  EXPECT_STREQ(lb_policy_name(LbPolicy::Random), "random");
  EXPECT_STREQ(lb_policy_name(LbPolicy::LeastRequest), "least_request");
}

// ---- Files ------------------------------------------------------------------------------------

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/h2mesh_config_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::remove((dir_ + "/h2mesh.yaml").c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_;
};

TEST_F(ConfigFile, LoadsAValidFile) {
  const std::string path = dir_ + "/h2mesh.yaml";
  std::ofstream(path) << "workers: 3\n" << kListenerAndCluster;
  auto result = load_config_file(path);
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(result.config->source, path);
  EXPECT_EQ(result.config->workers, 3u);
}

TEST_F(ConfigFile, ErrorsInAFileNameTheFile) {
  const std::string path = dir_ + "/h2mesh.yaml";
  std::ofstream(path) << "workers: 1000\n" << kListenerAndCluster;
  auto result = load_config_file(path);
  ASSERT_EQ(result.errors.size(), 1u) << dump(result);
  EXPECT_EQ(result.errors[0].file, path);
  EXPECT_EQ(result.errors[0].line, 1);
  EXPECT_EQ(result.errors[0].to_string().rfind(path + ":1:10: error: workers", 0), 0u)
      << result.errors[0].to_string();
}

TEST_F(ConfigFile, MissingFileIsAnErrorAtLineZero) {
  const std::string path = dir_ + "/absent.yaml";
  auto result = load_config_file(path);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].file, path);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_NE(result.errors[0].message.find("cannot open config file"), std::string::npos);
  EXPECT_NE(result.errors[0].message.find("No such file"), std::string::npos);
  EXPECT_FALSE(result.config.has_value());
}

TEST_F(ConfigFile, DirectoryIsAnErrorAtLineZero) {
  auto result = load_config_file(dir_);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_NE(result.errors[0].message.find("directory"), std::string::npos);
}

}  // namespace
}  // namespace h2mesh::config
