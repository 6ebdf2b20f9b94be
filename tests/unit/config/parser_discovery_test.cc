#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/parser.h"
#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

// ---- Valid configurations ---------------------------------------------------------------------

// One cluster per endpoint source, every discovery key set to a value other than its default;
// line numbers as visible below.
constexpr std::string_view kDiscoveryConfig = R"(
listeners:
  - name: grpc
    address: "127.0.0.1:0"
    routes:
      - match: { prefix: "/helloworld.Greeter/" }
        cluster: greeter
      - match: { prefix: "/echo.Echo/" }
        cluster: echo
      - cluster: fallback
clusters:
  - name: greeter
    lb_policy: least_request
    discovery:
      dns:
        name: greeter-headless.grpcdemo.svc.cluster.local
        port: 50051
        resolvers: ["127.0.0.1:5353", "[::1]:53", "10.96.0.10:53"]
        min_interval: 500ms
        max_interval: 1m
        timeout: 250ms
  - name: echo
    discovery:
      kubernetes:
        namespace: grpcdemo
        service: echo
        port: grpc
        kubeconfig: /root/.kube/config
        backoff: { base: 250ms, max: 1m }
  - name: fallback
    endpoints: ["127.0.0.1:50052"]
)";

TEST(ConfigParserDiscovery, DnsDiscoveryParsesEveryKey) {
  auto result = parse(kDiscoveryConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Cluster& greeter = result.config->clusters[0];
  EXPECT_EQ(greeter.lb_policy, LbPolicy::LeastRequest);
  EXPECT_TRUE(greeter.endpoints.empty());
  const Discovery& discovery = greeter.discovery;
  EXPECT_EQ(discovery.type, DiscoveryType::Dns);
  EXPECT_EQ(discovery.dns.name, "greeter-headless.grpcdemo.svc.cluster.local");
  EXPECT_EQ(discovery.dns.port, 50051);
  EXPECT_EQ(discovery.dns.resolvers,
            (std::vector<SocketAddress>{{"127.0.0.1", 5353}, {"::1", 53}, {"10.96.0.10", 53}}));
  EXPECT_EQ(discovery.dns.min_interval, Millis(500));
  EXPECT_EQ(discovery.dns.max_interval, minutes(1));
  EXPECT_EQ(discovery.dns.timeout, Millis(250));
  // The other source keeps its defaults.
  EXPECT_EQ(discovery.kubernetes.service, "");
  EXPECT_EQ(discovery.kubernetes.backoff_base, Millis(500));
}

TEST(ConfigParserDiscovery, KubernetesDiscoveryParsesEveryKey) {
  auto result = parse(kDiscoveryConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Cluster& echo = result.config->clusters[1];
  EXPECT_TRUE(echo.endpoints.empty());
  const Discovery& discovery = echo.discovery;
  EXPECT_EQ(discovery.type, DiscoveryType::Kubernetes);
  EXPECT_EQ(discovery.kubernetes.namespace_, "grpcdemo");
  EXPECT_EQ(discovery.kubernetes.service, "echo");
  EXPECT_EQ(discovery.kubernetes.port, "grpc");
  EXPECT_EQ(discovery.kubernetes.kubeconfig, "/root/.kube/config");
  EXPECT_EQ(discovery.kubernetes.backoff_base, Millis(250));
  EXPECT_EQ(discovery.kubernetes.backoff_max, minutes(1));
  EXPECT_EQ(discovery.dns.name, "");
  EXPECT_EQ(discovery.dns.port, 0);
}

TEST(ConfigParserDiscovery, ClusterWithEndpointsIsStatic) {
  auto result = parse(kDiscoveryConfig);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Cluster& fallback = result.config->clusters[2];
  EXPECT_EQ(fallback.discovery.type, DiscoveryType::Static);
  ASSERT_EQ(fallback.endpoints.size(), 1u);
  EXPECT_EQ(fallback.endpoints[0].address, (SocketAddress{"127.0.0.1", 50052}));
}

TEST(ConfigParserDiscovery, MinimalConfigGetsTheDiscoveryDefaults) {
  auto result = parse(kListenerAndCluster);
  ASSERT_TRUE(result.ok()) << dump(result);
  const Discovery& discovery = result.config->clusters[0].discovery;
  EXPECT_EQ(discovery.type, DiscoveryType::Static);
  EXPECT_EQ(discovery.dns.name, "");
  EXPECT_EQ(discovery.dns.port, 0);
  EXPECT_TRUE(discovery.dns.resolvers.empty());
  EXPECT_EQ(discovery.dns.min_interval, seconds(1));
  EXPECT_EQ(discovery.dns.max_interval, seconds(30));
  EXPECT_EQ(discovery.dns.timeout, seconds(2));
  EXPECT_EQ(discovery.kubernetes.namespace_, "");
  EXPECT_EQ(discovery.kubernetes.service, "");
  EXPECT_EQ(discovery.kubernetes.port, "");
  EXPECT_EQ(discovery.kubernetes.kubeconfig, "");
  EXPECT_EQ(discovery.kubernetes.backoff_base, Millis(500));
  EXPECT_EQ(discovery.kubernetes.backoff_max, seconds(30));
}

TEST(ConfigParserDiscovery, DnsWithOnlyNameAndPortGetsTheDefaults) {
  auto result = parse_discovery(R"(
      dns: { name: greeter, port: 50051 }
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const DnsDiscovery& dns = result.config->clusters[0].discovery.dns;
  EXPECT_EQ(result.config->clusters[0].discovery.type, DiscoveryType::Dns);
  EXPECT_EQ(dns.name, "greeter");
  EXPECT_EQ(dns.port, 50051);
  EXPECT_TRUE(dns.resolvers.empty());
  EXPECT_EQ(dns.min_interval, seconds(1));
  EXPECT_EQ(dns.max_interval, seconds(30));
  EXPECT_EQ(dns.timeout, seconds(2));
}

TEST(ConfigParserDiscovery, KubernetesWithOnlyServiceGetsTheDefaults) {
  auto result = parse_discovery(R"(
      kubernetes: { service: greeter }
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const Discovery& discovery = result.config->clusters[0].discovery;
  EXPECT_EQ(discovery.type, DiscoveryType::Kubernetes);
  EXPECT_EQ(discovery.kubernetes.service, "greeter");
  EXPECT_EQ(discovery.kubernetes.namespace_, "");
  EXPECT_EQ(discovery.kubernetes.port, "");
  EXPECT_EQ(discovery.kubernetes.kubeconfig, "");
  EXPECT_EQ(discovery.kubernetes.backoff_base, Millis(500));
  EXPECT_EQ(discovery.kubernetes.backoff_max, seconds(30));
}

TEST(ConfigParserDiscovery, DnsRangeLimitsAreAccepted) {
  // 253 characters: three labels of 63, one of 61 and the dots between them; a trailing dot
  // (fully qualified) is not counted.
  const std::string label(63, 'x');
  const std::string longest = label + "." + label + "." + label + "." + std::string(61, 'y') + ".";
  auto result = parse_discovery(R"(
      dns:
        name: )" + longest + R"(
        port: 65535
        resolvers: ["1.1.1.1:1", "[2001:db8::1]:65535"]
        min_interval: 100ms
        max_interval: 100ms
        timeout: 10ms
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const DnsDiscovery& dns = result.config->clusters[0].discovery.dns;
  EXPECT_EQ(dns.name, longest);
  EXPECT_EQ(dns.port, 65535);
  EXPECT_EQ(dns.resolvers, (std::vector<SocketAddress>{{"1.1.1.1", 1}, {"2001:db8::1", 65535}}));
  EXPECT_EQ(dns.min_interval, Millis(100));
  EXPECT_EQ(dns.max_interval, Millis(100));
  EXPECT_EQ(dns.timeout, Millis(10));
}

TEST(ConfigParserDiscovery, DnsUpperRangeLimitsAndEmptyResolversAreAccepted) {
  auto result = parse_discovery(R"(
      dns:
        name: Greeter.Example
        port: 1
        resolvers: []
        min_interval: 24h
        max_interval: 24h
        timeout: 24h
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const DnsDiscovery& dns = result.config->clusters[0].discovery.dns;
  EXPECT_EQ(dns.name, "Greeter.Example");  // DNS names are case-insensitive: kept as written
  EXPECT_EQ(dns.port, 1);
  EXPECT_TRUE(dns.resolvers.empty());
  EXPECT_EQ(dns.min_interval, std::chrono::hours(24));
  EXPECT_EQ(dns.timeout, std::chrono::hours(24));
}

TEST(ConfigParserDiscovery, KubernetesRangeLimitsAreAccepted) {
  const std::string longest(63, 'a');
  auto result = parse_discovery(R"(
      kubernetes:
        namespace: )" + longest +
                                R"(
        service: )" + longest + R"(
        port: abcdefghijklmn1
        kubeconfig: ""
        backoff: { base: 10ms, max: 10ms }
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const KubernetesDiscovery& kubernetes = result.config->clusters[0].discovery.kubernetes;
  EXPECT_EQ(kubernetes.namespace_, longest);
  EXPECT_EQ(kubernetes.service, longest);
  EXPECT_EQ(kubernetes.port, "abcdefghijklmn1");
  EXPECT_EQ(kubernetes.kubeconfig, "");
  EXPECT_EQ(kubernetes.backoff_base, Millis(10));
  EXPECT_EQ(kubernetes.backoff_max, Millis(10));
}

TEST(ConfigParserDiscovery, KubernetesEmptyNamespaceMeansThePodsOwn) {
  auto result = parse_discovery(R"(
      kubernetes: { namespace: "", service: a, port: h2c-1 }
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const KubernetesDiscovery& kubernetes = result.config->clusters[0].discovery.kubernetes;
  EXPECT_EQ(kubernetes.namespace_, "");
  EXPECT_EQ(kubernetes.service, "a");
  EXPECT_EQ(kubernetes.port, "h2c-1");
}

TEST(ConfigParserDiscovery, KubernetesPortNumbersAreKeptAsDecimalText) {
  for (auto [written, stored] :
       std::vector<std::pair<std::string, std::string>>{{"50051", "50051"},
                                                        {"\"8080\"", "8080"},
                                                        {"1", "1"},
                                                        {"65535", "65535"},
                                                        {"0443", "443"}}) {
    SCOPED_TRACE(written);
    auto result =
        parse_discovery("      kubernetes: { service: greeter, port: " + written + " }\n");
    ASSERT_TRUE(result.ok()) << dump(result);
    EXPECT_EQ(result.config->clusters[0].discovery.kubernetes.port, stored);
  }
}

TEST(ConfigParserDiscovery, DiscoveredClusterKeepsItsOtherSettings) {
  auto result = parse_cluster(R"(
    connect_timeout: 250ms
    health_check: {}
    discovery:
      dns: { name: greeter, port: 50051 }
    circuit_breakers: { max_calls: 10 }
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const Cluster& cluster = result.config->clusters[0];
  EXPECT_EQ(cluster.connect_timeout, Millis(250));
  EXPECT_TRUE(cluster.health_check.enabled);
  EXPECT_EQ(cluster.circuit_breakers.max_calls, 10u);
  EXPECT_EQ(cluster.discovery.type, DiscoveryType::Dns);
}

// ---- Static endpoints or discovery --------------------------------------------------------------

TEST(ConfigParserDiscovery, DnsDiscoveryWithEndpointsIsAnError) {
  auto result = parse_cluster(R"(
    discovery:
      dns: { name: greeter, port: 50051 }
    endpoints: ["127.0.0.1:50051"]
)");
  ASSERT_TRUE(has_one_error(result, 10,
                            "clusters[0].endpoints: a cluster with DNS discovery cannot also "
                            "list endpoints",
                            "remove 'endpoints', or remove 'discovery' to use the static list"));
  EXPECT_EQ(result.errors[0].column, 5);
  EXPECT_NE(result.errors[0].hint.find("discovery.dns.name"), std::string::npos);
}

TEST(ConfigParserDiscovery, KubernetesDiscoveryWithEndpointsIsAnError) {
  auto result = parse_cluster(R"(
    endpoints:
      - "127.0.0.1:50051"
    discovery:
      kubernetes: { service: greeter }
)");
  // Points at the key, not at the list below it.
  ASSERT_TRUE(has_one_error(result, 8, "a cluster with Kubernetes discovery cannot also list",
                            "EndpointSlices of discovery.kubernetes.service"));
  EXPECT_EQ(result.errors[0].column, 5);
}

TEST(ConfigParserDiscovery, EvenAnEmptyEndpointListConflictsWithDiscovery) {
  auto result = parse_cluster(R"(
    endpoints: []
    discovery:
      dns: { name: greeter, port: 50051 }
)");
  ASSERT_TRUE(has_one_error(result, 8, "cannot also list endpoints", "remove 'endpoints'"));
}

TEST(ConfigParserDiscovery, EndpointsConflictIsReportedAlongsideDiscoveryErrors) {
  auto result = parse_cluster(R"(
    discovery:
      dns: { name: greeter, port: 0 }
    endpoints: ["127.0.0.1:50051"]
)");
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 9);
  EXPECT_NE(result.errors[0].message.find("dns.port: 0 is out of range"), std::string::npos);
  EXPECT_EQ(result.errors[1].line, 10);
  EXPECT_NE(result.errors[1].message.find("cannot also list endpoints"), std::string::npos);
}

TEST(ConfigParserDiscovery, ClusterWithNeitherEndpointsNorDiscoveryIsAnError) {
  auto result = parse_cluster(R"(
    lb_policy: random
)");
  ASSERT_TRUE(has_one_error(result, 7, "clusters[0]: missing required key 'endpoints'",
                            "or find them with discovery: { dns: ... }"));
}

TEST(ConfigParserDiscovery, EmptyEndpointListWithoutDiscoveryMentionsDiscovery) {
  auto result = parse_cluster(R"(
    endpoints: []
)");
  ASSERT_TRUE(has_one_error(result, 8, "clusters[0].endpoints: at least one endpoint is required",
                            "discovery: { kubernetes: ... }"));
}

TEST(ConfigParserDiscovery, BrokenDiscoveryDoesNotAlsoDemandEndpoints) {
  auto result = parse_discovery(R"(
      dns: { port: 50051 }
)");
  ASSERT_TRUE(has_one_error(result, 9, "discovery.dns: missing required key 'name'",
                            "greeter-headless.default.svc.cluster.local"));
}

TEST(ConfigParserDiscovery, BrokenDiscoveryStillChecksWrittenEndpoints) {
  auto result = parse_cluster(R"(
    discovery: {}
    endpoints: ["greeter:50051"]
)");
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 8);
  EXPECT_EQ(result.errors[1].line, 9);
  EXPECT_NE(result.errors[1].message.find("'greeter' is not an IPv4 address"), std::string::npos);
}

TEST(ConfigParserDiscovery, EndpointHostnameHintShowsTheDnsDiscoveryToWrite) {
  auto result = parse_cluster(R"(
    endpoints: ["greeter-headless.grpcdemo:50051"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "is not an IPv4 address",
                            "replace 'endpoints' with discovery: { dns: { name: "
                            "greeter-headless.grpcdemo, port: 50051 } }"));
}

TEST(ConfigParserDiscovery, EndpointHostnameWithPortZeroLeavesThePortOpen) {
  auto result = parse_cluster(R"(
    endpoints: ["greeter:0"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "is not an IPv4 address",
                            "discovery: { dns: { name: greeter, port: <port> } }"));
}

// ---- The discovery map ------------------------------------------------------------------------

TEST(ConfigParserDiscovery, EmptyDiscoveryMapIsAnError) {
  auto result = parse_cluster(R"(
    discovery: {}
)");
  ASSERT_TRUE(has_one_error(result, 8, "clusters[0].discovery: needs 'dns' or 'kubernetes'",
                            "without 'discovery', list the cluster's 'endpoints'"));
  EXPECT_EQ(result.errors[0].column, 16);
}

TEST(ConfigParserDiscovery, NullDiscoveryIsAnError) {
  auto result = parse_cluster(R"(
    discovery:
    lb_policy: random
)");
  ASSERT_TRUE(has_one_error(result, 8, "clusters[0].discovery: expected a map, got null",
                            "keys here: dns, kubernetes"));
}

TEST(ConfigParserDiscovery, ScalarDiscoveryIsAnError) {
  auto result = parse_cluster(R"(
    discovery: dns
)");
  ASSERT_TRUE(has_one_error(result, 8, "discovery: expected a map, got 'dns'", "dns, kubernetes"));
}

TEST(ConfigParserDiscovery, DnsAndKubernetesTogetherIsAnError) {
  auto result = parse_discovery(R"(
      dns: { name: greeter, port: 50051 }
      kubernetes: { service: greeter }
)");
  ASSERT_TRUE(has_one_error(result, 10,
                            "clusters[0].discovery: 'dns' and 'kubernetes' cannot both be set",
                            "one source of endpoints: keep one of them"));
  EXPECT_EQ(result.errors[0].column, 7);
}

TEST(ConfigParserDiscovery, BothSourcesErrorPointsAtTheLaterOne) {
  auto result = parse_discovery(R"(
      kubernetes:
        service: greeter
      dns:
        name: greeter
        port: 50051
)");
  ASSERT_TRUE(has_one_error(result, 11, "'dns' and 'kubernetes' cannot both be set"));
}

TEST(ConfigParserDiscovery, BothSourcesAreStillCheckedForTheirOwnErrors) {
  auto result = parse_discovery(R"(
      dns: { name: greeter }
      kubernetes: { service: Greeter }
)");
  ASSERT_EQ(result.errors.size(), 3u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 9);
  EXPECT_NE(result.errors[0].message.find("dns: missing required key 'port'"), std::string::npos);
  EXPECT_EQ(result.errors[1].line, 10);
  EXPECT_NE(result.errors[1].message.find("cannot both be set"), std::string::npos);
  EXPECT_EQ(result.errors[2].line, 10);
  EXPECT_NE(result.errors[2].message.find("upper-case"), std::string::npos);
}

TEST(ConfigParserDiscovery, MisspelledSourceSuggestsIt) {
  // The typo alone is reported: neither "needs 'dns' or 'kubernetes'" nor missing endpoints.
  ASSERT_TRUE(has_one_error(parse_discovery("      dsn: { name: greeter, port: 50051 }\n"), 9,
                            "clusters[0].discovery: unknown key 'dsn'", "did you mean 'dns'?"));
  ASSERT_TRUE(has_one_error(parse_discovery("      kubernets: { service: greeter }\n"), 9,
                            "unknown key 'kubernets'", "did you mean 'kubernetes'?"));
}

TEST(ConfigParserDiscovery, UnknownSourceListsTheKnownOnes) {
  ASSERT_TRUE(has_one_error(parse_discovery("      consul: { service: greeter }\n"), 9,
                            "unknown key 'consul'", "known keys here: dns, kubernetes"));
}

TEST(ConfigParserDiscovery, MisspelledDiscoveryKeySuggestsIt) {
  auto result = parse_cluster(R"(
    discovry:
      dns: { name: greeter, port: 50051 }
)");
  // Without a 'discovery' key the cluster is static, so its missing endpoints are reported too.
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 7);
  EXPECT_NE(result.errors[0].message.find("missing required key 'endpoints'"), std::string::npos);
  EXPECT_EQ(result.errors[1].line, 8);
  EXPECT_NE(result.errors[1].message.find("clusters[0]: unknown key 'discovry'"),
            std::string::npos);
  EXPECT_EQ(result.errors[1].hint, "did you mean 'discovery'?");
}

TEST(ConfigParserDiscovery, DuplicateDiscoveryKeyIsAnError) {
  auto result = parse_cluster(R"(
    discovery:
      dns: { name: greeter, port: 50051 }
    discovery:
      kubernetes: { service: greeter }
)");
  ASSERT_TRUE(
      has_one_error(result, 10, "duplicate key 'clusters[0].discovery'", "first set on line 9"));
}

TEST(ConfigParserDiscovery, EveryDiscoveryErrorIsReportedInFileOrder) {
  auto result = parse(R"(
listeners:
  - name: grpc
    address: "127.0.0.1:0"
    routes: [{ cluster: a }]
clusters:
  - name: a
    discovery:
      dns:
        name: a_b
        port: 70000
        resolvers: [dns.local]
        min_interval: 10ms
        timout: 1s
  - name: b
    discovery:
      kubernetes:
        namespace: Demo
        port: grpc--web
        backoff: { base: 1ms }
  - name: c
    discovery: { dns: { name: c, port: 1 } }
    endpoints: ["127.0.0.1:1"]
)");
  const std::vector<std::pair<int, std::string_view>> expected = {
      {9, "clusters[0].discovery.dns.name: invalid DNS name 'a_b'"},
      {10, "clusters[0].discovery.dns.port: 70000 is out of range"},
      {11, "clusters[0].discovery.dns.resolvers[0]: invalid address 'dns.local': no port"},
      {12, "clusters[0].discovery.dns.min_interval: must be at least 100ms"},
      {13, "clusters[0].discovery.dns: unknown key 'timout'"},
      {17, "clusters[1].discovery.kubernetes: missing required key 'service'"},
      {17, "clusters[1].discovery.kubernetes.namespace: invalid name 'Demo'"},
      {18, "clusters[1].discovery.kubernetes.port: invalid port name 'grpc--web'"},
      {19, "clusters[1].discovery.kubernetes.backoff.base: must be at least 10ms"},
      {22, "clusters[2].endpoints: a cluster with DNS discovery cannot also list endpoints"},
  };
  ASSERT_EQ(result.errors.size(), expected.size()) << dump(result);
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(result.errors[i].line, expected[i].first) << dump(result);
    EXPECT_NE(result.errors[i].message.find(expected[i].second), std::string::npos) << dump(result);
    EXPECT_GT(result.errors[i].column, 0);
    EXPECT_FALSE(result.errors[i].hint.empty()) << result.errors[i].to_string();
  }
  EXPECT_FALSE(result.config.has_value());
}

}  // namespace
}  // namespace h2mesh::config
