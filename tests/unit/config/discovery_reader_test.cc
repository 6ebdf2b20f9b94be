#include "config/discovery_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

using std::chrono::seconds;

// `dns:` on line 9, then `dns_body` from line 10 (keys indented by 8 spaces).
ParseResult parse_dns(std::string_view dns_body) {
  std::string body(dns_body);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_discovery("      dns:\n" + body);
}

// A valid name and port on lines 10 and 11, then `extra` from line 12.
ParseResult parse_dns_with(std::string_view extra) {
  std::string body(extra);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_dns("        name: greeter\n        port: 50051\n" + body);
}

// `kubernetes:` on line 9, then `kubernetes_body` from line 10 (keys indented by 8 spaces).
ParseResult parse_kubernetes(std::string_view kubernetes_body) {
  std::string body(kubernetes_body);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_discovery("      kubernetes:\n" + body);
}

// `service: greeter` on line 10, then `extra` from line 11.
ParseResult parse_kubernetes_with(std::string_view extra) {
  std::string body(extra);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_kubernetes("        service: greeter\n" + body);
}

struct BadValue {
  std::string yaml;  // as written after "key: "
  std::string message;
  std::string hint;
};

// ---- dns --------------------------------------------------------------------------------------

TEST(DnsDiscovery, MissingNameAndPortAreBothReported) {
  auto result = parse_discovery("      dns: {}\n");
  ASSERT_EQ(result.errors.size(), 2u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 9);
  EXPECT_NE(result.errors[0].message.find("clusters[0].discovery.dns: missing required key 'name'"),
            std::string::npos);
  EXPECT_EQ(result.errors[0].hint, "e.g. name: greeter-headless.default.svc.cluster.local");
  EXPECT_EQ(result.errors[1].line, 9);
  EXPECT_NE(result.errors[1].message.find("missing required key 'port'"), std::string::npos);
  EXPECT_NE(result.errors[1].hint.find("port: 50051"), std::string::npos);
}

TEST(DnsDiscovery, NullDnsIsAnError) {
  auto result = parse_discovery("      dns:\n");
  ASSERT_TRUE(
      has_one_error(result, 9, "discovery.dns: expected a map, got null",
                    "keys here: name, port, resolvers, min_interval, max_interval, timeout"));
}

TEST(DnsDiscovery, InvalidNamesAreRejectedWithAReason) {
  const std::string long_label(64, 'x');
  const std::string label(63, 'x');
  const std::string too_long = label + "." + label + "." + label + "." + std::string(62, 'y');
  const std::vector<BadValue> cases = {
      {"\"\"", "dns.name: must not be empty", "greeter-headless.default.svc.cluster.local"},
      {"10.0.0.1", "'10.0.0.1' is an IP address, not a DNS name",
       "under the cluster's 'endpoints'"},
      {"\"[fd00::1]\"", "'[fd00::1]' is an IP address", "'endpoints'"},
      {"\"::1\"", "'::1' is an IP address", "'endpoints'"},
      {"\"http://greeter\"", "invalid DNS name 'http://greeter': a URL is not a name",
       "write only the host name"},
      {"\"greeter:50051\"", "invalid DNS name 'greeter:50051': character ':' is not allowed",
       "write the port under 'port': name: greeter, port: 50051"},
      {"\"greeter:grpc\"", "character ':' is not allowed", "only letters, digits, '-' and '.'"},
      {"greeter_svc", "character '_' is not allowed", "only letters, digits, '-' and '.'"},
      {"\"greeter svc\"", "character ' ' is not allowed", "only letters, digits, '-' and '.'"},
      {"\"grüße.example\"", "non-ASCII characters are not allowed", "xn--"},
      {".greeter", "empty label", "remove the extra '.'"},
      {"greeter..local", "empty label", "single dots"},
      {"\"greeter..\"", "empty label", "remove the extra '.'"},
      {"\".\"", "empty label", "remove the extra '.'"},
      {"-greeter.local", "label '-greeter' starts or ends with '-'", "a letter or digit"},
      {"greeter.local-", "label 'local-' starts or ends with '-'", "a letter or digit"},
      {long_label + ".local", "is longer than 63 characters", "1..63 characters"},
      {too_long, "invalid DNS name: 254 characters long", "at most 253 characters"},
      {too_long + ".", "254 characters long", "at most 253"},
      {"greeter.123", "the last label '123' is all digits", "svc.cluster.local"},
      {"10.0.0", "the last label '0' is all digits", "ends with a label that has a letter"},
  };
  for (const BadValue& bad : cases) {
    SCOPED_TRACE(bad.yaml);
    auto result = parse_dns("        name: " + bad.yaml + "\n        port: 50051\n");
    ASSERT_TRUE(has_one_error(result, 10, bad.message, bad.hint));
  }
}

TEST(DnsDiscovery, NameMustBeAString) {
  auto result = parse_dns(R"(
        name: [greeter]
        port: 50051
)");
  ASSERT_TRUE(has_one_error(result, 10, "dns.name: expected a string, got a sequence"));
}

TEST(DnsDiscovery, PortOutsideOneTo65535IsAnError) {
  for (const char* port : {"0", "65536", "-1", "99999999999999999999"}) {
    SCOPED_TRACE(port);
    auto result = parse_dns("        name: greeter\n        port: " + std::string(port) + "\n");
    ASSERT_TRUE(has_one_error(result, 11, "dns.port: " + std::string(port) + " is out of range",
                              "allowed range: 1..65535"));
  }
}

TEST(DnsDiscovery, PortMustBeANumber) {
  auto result = parse_dns(R"(
        name: greeter
        port: grpc
)");
  ASSERT_TRUE(has_one_error(result, 11, "dns.port: expected an integer, got 'grpc'", "1..65535"));
}

TEST(DnsDiscovery, SingleResolverInsteadOfAListShowsTheList) {
  auto result = parse_dns_with(R"(
        resolvers: "10.96.0.10:53"
)");
  ASSERT_TRUE(has_one_error(result, 12, "dns.resolvers: expected a sequence, got '10.96.0.10:53'",
                            "write a list, e.g. [\"10.96.0.10:53\"]"));
}

TEST(DnsDiscovery, ResolversMustBeAList) {
  auto result = parse_dns_with(R"(
        resolvers: { primary: "10.96.0.10:53" }
)");
  ASSERT_TRUE(has_one_error(result, 12, "dns.resolvers: expected a sequence, got a map"));
}

TEST(DnsDiscovery, InvalidResolversAreRejectedWithAHint) {
  const std::vector<BadValue> cases = {
      {"10.96.0.10", "resolvers[0]: invalid address '10.96.0.10': no port",
       "add the resolver's port, usually 53: 10.96.0.10:53"},
      {"\"[fd00::10]\"", "invalid address '[fd00::10]': no port", "usually 53: [fd00::10]:53"},
      {"kube-dns", "invalid address 'kube-dns': no port", "a resolver is an IP address"},
      {"kube-dns.kube-system:53", "'kube-dns.kube-system' is not an IPv4 address",
       "a resolver is an IP address"},
      {"300.1.1.1:53", "'300.1.1.1' is not an IPv4 address", "write an IPv4 address like"},
      {"\"fd00::10:53\"", "an IPv6 address must be in brackets", "[fd00::10]:53"},
      {"10.96.0.10:0", "resolvers[0]: a resolver cannot have port 0", "1..65535, usually 53"},
      {"10.96.0.10:65536", "port '65536' is not a number", "resolver ports are 1..65535"},
      {"\"\"", "invalid address '': no port", "write an IP address and a port"},
      {"\":53\"", "invalid address ':53': no host", "write an IP address and a port"},
  };
  for (const BadValue& bad : cases) {
    SCOPED_TRACE(bad.yaml);
    auto result = parse_dns_with("        resolvers: [" + bad.yaml + "]\n");
    ASSERT_TRUE(has_one_error(result, 12, bad.message, bad.hint));
  }
}

TEST(DnsDiscovery, ResolverErrorsPointAtTheirItems) {
  auto result = parse_dns_with(R"(
        resolvers:
          - "[::1]:53"
          - { address: "10.0.0.1:53" }
          - "[0::1]:53"
          - "10.0.0.2"
)");
  ASSERT_EQ(result.errors.size(), 3u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 14);
  EXPECT_NE(result.errors[0].message.find("resolvers[1]: expected a string, got a map"),
            std::string::npos);
  EXPECT_EQ(result.errors[1].line, 15);
  EXPECT_NE(result.errors[1].message.find("resolvers[2]: duplicate resolver [::1]:53"),
            std::string::npos);
  EXPECT_EQ(result.errors[1].hint, "already listed on line 13; remove one");
  EXPECT_EQ(result.errors[2].line, 16);
  EXPECT_NE(result.errors[2].hint.find("10.0.0.2:53"), std::string::npos);
}

TEST(DnsDiscovery, IntervalsBelow100msAreErrors) {
  for (const char* key : {"min_interval", "max_interval"}) {
    SCOPED_TRACE(key);
    auto result = parse_dns_with("        " + std::string(key) + ": 99ms\n");
    ASSERT_TRUE(has_one_error(result, 12, "dns." + std::string(key) + ": must be at least 100ms",
                              "allowed range: 100ms..24h"));
  }
}

TEST(DnsDiscovery, TimeoutBelow10msIsAnError) {
  for (const char* timeout : {"9ms", "0s"}) {
    SCOPED_TRACE(timeout);
    auto result = parse_dns_with("        timeout: " + std::string(timeout) + "\n");
    ASSERT_TRUE(has_one_error(result, 12, "dns.timeout: must be at least 10ms", "10ms..24h"));
  }
}

TEST(DnsDiscovery, DurationsNeedAUnit) {
  auto result = parse_dns_with(R"(
        timeout: 2
)");
  ASSERT_TRUE(has_one_error(result, 12, "dns.timeout: duration '2' has no unit", "500ms"));
}

TEST(DnsDiscovery, MaxIntervalShorterThanMinIntervalIsAnError) {
  auto result = parse_dns_with(R"(
        min_interval: 10s
        max_interval: 5s
)");
  ASSERT_TRUE(has_one_error(result, 13,
                            "discovery.dns: max_interval (5000ms) is shorter than min_interval "
                            "(10000ms)",
                            "max_interval must be >= min_interval (defaults: 1s and 30s)"));
}

TEST(DnsDiscovery, MinIntervalAboveTheDefaultMaxIsAnError) {
  auto result = parse_dns_with(R"(
        min_interval: 1m
)");
  ASSERT_TRUE(has_one_error(result, 12,
                            "max_interval (30000ms) is shorter than min_interval "
                            "(60000ms)"));
}

TEST(DnsDiscovery, MaxIntervalBelowTheDefaultMinIsAnError) {
  auto result = parse_dns_with(R"(
        max_interval: 500ms
)");
  ASSERT_TRUE(
      has_one_error(result, 12, "max_interval (500ms) is shorter than min_interval (1000ms)"));
}

TEST(DnsDiscovery, InvalidIntervalIsNotAlsoCrossChecked) {
  auto result = parse_dns_with(R"(
        min_interval: 1.5s
        max_interval: 1s
)");
  ASSERT_TRUE(has_one_error(result, 12, "dns.min_interval: invalid duration '1.5s'", "1500ms"));
}

TEST(DnsDiscovery, MisspelledKeysSuggestThem) {
  auto result = parse_dns_with(R"(
        resolver: ["10.96.0.10:53"]
        min_interva: 1s
        ttl: 5s
)");
  ASSERT_EQ(result.errors.size(), 3u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 12);
  EXPECT_NE(result.errors[0].message.find("discovery.dns: unknown key 'resolver'"),
            std::string::npos);
  EXPECT_EQ(result.errors[0].hint, "did you mean 'resolvers'?");
  EXPECT_EQ(result.errors[1].line, 13);
  EXPECT_EQ(result.errors[1].hint, "did you mean 'min_interval'?");
  EXPECT_EQ(result.errors[2].line, 14);
  EXPECT_EQ(result.errors[2].hint,
            "known keys here: name, port, resolvers, min_interval, max_interval, timeout");
}

// ---- kubernetes -------------------------------------------------------------------------------

TEST(KubernetesDiscovery, MissingServiceIsAnError) {
  auto result = parse_discovery("      kubernetes: { namespace: grpcdemo }\n");
  ASSERT_TRUE(has_one_error(result, 9, "discovery.kubernetes: missing required key 'service'",
                            "the Service whose EndpointSlices to watch, e.g. service: greeter"));
}

TEST(KubernetesDiscovery, NullKubernetesIsAnError) {
  auto result = parse_discovery("      kubernetes:\n");
  ASSERT_TRUE(has_one_error(result, 9, "discovery.kubernetes: expected a map, got null",
                            "keys here: namespace, service, port, kubeconfig, backoff"));
}

TEST(KubernetesDiscovery, InvalidServiceNamesAreRejected) {
  const std::vector<BadValue> cases = {
      {"\"\"", "kubernetes.service: must not be empty", "e.g. service: greeter"},
      {"Greeter", "invalid name 'Greeter': upper-case letters are not allowed",
       "Kubernetes names are lower case: 'greeter'"},
      {"greeter.grpcdemo", "invalid name 'greeter.grpcdemo': character '.' is not allowed",
       "its namespace goes under 'namespace'"},
      {"greeter_svc", "character '_' is not allowed", "lower-case letters, digits and '-'"},
      {"-greeter", "invalid name '-greeter': starts or ends with '-'", "a letter or digit"},
      {"greeter-", "starts or ends with '-'", "a letter or digit"},
      {std::string(64, 'a'), "longer than 63 characters", "at most 63 characters"},
  };
  for (const BadValue& bad : cases) {
    SCOPED_TRACE(bad.yaml);
    auto result = parse_kubernetes("        service: " + bad.yaml + "\n");
    ASSERT_TRUE(has_one_error(result, 10, bad.message, bad.hint));
  }
}

TEST(KubernetesDiscovery, InvalidNamespacesAreRejected) {
  const std::vector<BadValue> cases = {
      {"GrpcDemo", "kubernetes.namespace: invalid name 'GrpcDemo': upper-case", "'grpcdemo'"},
      {"grpc.demo", "character '.' is not allowed", "(DNS-1123 label)"},
      {"grpc-", "starts or ends with '-'", "a letter or digit"},
      {std::string(64, 'n'), "longer than 63 characters", "at most 63"},
      {"[grpcdemo]", "kubernetes.namespace: expected a string, got a sequence", ""},
  };
  for (const BadValue& bad : cases) {
    SCOPED_TRACE(bad.yaml);
    auto result = parse_kubernetes_with("        namespace: " + bad.yaml + "\n");
    ASSERT_TRUE(has_one_error(result, 11, bad.message, bad.hint));
  }
}

TEST(KubernetesDiscovery, InvalidPortsAreRejected) {
  const std::vector<BadValue> cases = {
      {"0", "kubernetes.port: port 0 is out of range", "1..65535, or a port name such as grpc"},
      {"65536", "port 65536 is out of range", "1..65535"},
      {"-1", "port -1 is out of range", "1..65535"},
      {"99999999999999999999", "is out of range", "1..65535"},
      {"\"\"", "kubernetes.port: must not be empty", "omit 'port' when the Service has a single"},
      {"GRPC", "invalid port name 'GRPC': upper-case letters are not allowed", "'grpc'"},
      {"grpc--web", "invalid port name 'grpc--web': '--' is not allowed", "no two '-' in a row"},
      {"1-2", "invalid port name '1-2': it has no letter", "at least one letter"},
      {"-grpc", "starts or ends with '-'", "a letter or digit"},
      {"grpc_web", "character '_' is not allowed", "lower-case letters, digits and '-'"},
      {"grpc-web-port-xy", "invalid port name 'grpc-web-port-xy': longer than 15 characters",
       "at most 15 characters"},
      {"[grpc]", "kubernetes.port: expected a string, got a sequence", ""},
  };
  for (const BadValue& bad : cases) {
    SCOPED_TRACE(bad.yaml);
    auto result = parse_kubernetes_with("        port: " + bad.yaml + "\n");
    ASSERT_TRUE(has_one_error(result, 11, bad.message, bad.hint));
  }
}

TEST(KubernetesDiscovery, UnexpandedKubeconfigPathIsAnError) {
  for (const char* path : {"~/.kube/config", "$HOME/.kube/config"}) {
    SCOPED_TRACE(path);
    auto result = parse_kubernetes_with("        kubeconfig: " + std::string(path) + "\n");
    ASSERT_TRUE(has_one_error(result, 11,
                              "kubernetes.kubeconfig: '" + std::string(path) + "' is not expanded",
                              "write the full path, e.g. /root/.kube/config"));
  }
}

TEST(KubernetesDiscovery, KubeconfigMustBeAString) {
  auto result = parse_kubernetes_with(R"(
        kubeconfig: { path: /root/.kube/config }
)");
  ASSERT_TRUE(has_one_error(result, 11, "kubernetes.kubeconfig: expected a string, got a map"));
}

TEST(KubernetesDiscovery, RelativeKubeconfigIsKeptAsWritten) {
  auto result = parse_kubernetes_with(R"(
        kubeconfig: deploy/kubeconfig.yaml
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(result.config->clusters[0].discovery.kubernetes.kubeconfig, "deploy/kubeconfig.yaml");
}

TEST(KubernetesDiscovery, BackoffBelow10msIsAnError) {
  for (const char* key : {"base", "max"}) {
    SCOPED_TRACE(key);
    auto result = parse_kubernetes_with("        backoff: { " + std::string(key) + ": 9ms }\n");
    ASSERT_TRUE(has_one_error(result, 11,
                              "kubernetes.backoff." + std::string(key) + ": must be at least 10ms",
                              "allowed range: 10ms..24h"));
  }
}

TEST(KubernetesDiscovery, BackoffBaseAboveMaxIsAnError) {
  auto result = parse_kubernetes_with(R"(
        backoff: { base: 10s, max: 1s }
)");
  ASSERT_TRUE(has_one_error(result, 11,
                            "kubernetes.backoff: base (10000ms) is larger than max (1000ms)",
                            "the defaults are 500ms and 30s"));
}

TEST(KubernetesDiscovery, BackoffBaseAboveTheDefaultMaxIsAnError) {
  auto result = parse_kubernetes_with(R"(
        backoff:
          base: 1m
)");
  ASSERT_TRUE(has_one_error(result, 12, "base (60000ms) is larger than max (30000ms)"));
}

TEST(KubernetesDiscovery, BackoffMustBeAMap) {
  auto result = parse_kubernetes_with(R"(
        backoff: 1s
)");
  ASSERT_TRUE(has_one_error(result, 11, "kubernetes.backoff: expected a map, got '1s'",
                            "keys here: base, max"));
}

TEST(KubernetesDiscovery, MisspelledKeysSuggestThem) {
  auto result = parse_kubernetes_with(R"(
        namespce: grpcdemo
        kube_config: /root/.kube/config
        backoff: { min: 1s }
        selector: app=greeter
)");
  ASSERT_EQ(result.errors.size(), 4u) << dump(result);
  EXPECT_EQ(result.errors[0].line, 11);
  EXPECT_NE(result.errors[0].message.find("discovery.kubernetes: unknown key 'namespce'"),
            std::string::npos);
  EXPECT_EQ(result.errors[0].hint, "did you mean 'namespace'?");
  EXPECT_EQ(result.errors[1].line, 12);
  EXPECT_EQ(result.errors[1].hint, "did you mean 'kubeconfig'?");
  EXPECT_EQ(result.errors[2].line, 13);
  EXPECT_NE(result.errors[2].message.find("kubernetes.backoff: unknown key 'min'"),
            std::string::npos);
  EXPECT_EQ(result.errors[2].hint, "known keys here: base, max");
  EXPECT_EQ(result.errors[3].line, 14);
  EXPECT_EQ(result.errors[3].hint,
            "known keys here: namespace, service, port, kubeconfig, backoff");
}

// ---- Name checks ------------------------------------------------------------------------------

TEST(DiscoveryNames, DnsNamesThatAreAccepted) {
  const std::string label(63, 'z');
  for (const std::string& name :
       {std::string("greeter"), std::string("greeter-headless.grpcdemo.svc.cluster.local"),
        std::string("greeter.grpcdemo.svc.cluster.local."), std::string("a"),
        std::string("0greeter.example"), std::string("xn--bcher-kva.example"),
        std::string("GREETER.Example"), std::string("a-b--c.d"), std::string("10.0.0.1.nip.io"),
        label + "." + label + "." + label + "." + std::string(61, 'y'),
        label + "." + label + "." + label + "." + std::string(61, 'y') + "."}) {
    SCOPED_TRACE(name);
    std::string error;
    std::string hint;
    EXPECT_TRUE(check_dns_name(name, &error, &hint)) << error;
  }
}

TEST(DiscoveryNames, DnsNamesThatAreRejectedSayWhy) {
  const std::string label(63, 'z');
  for (const std::string& name :
       {std::string(""), std::string("."), std::string(".."), std::string("a..b"),
        std::string(".a"), std::string("a.."), std::string("-a"), std::string("a-"),
        std::string("a_b"), std::string("a b"), std::string("a/b"), std::string("a:1"),
        std::string("1.2.3.4"), std::string("[::1]"), std::string("1.2.3"), std::string("a.1"),
        std::string("\xC3\xA9.example"), std::string(64, 'z') + ".example",
        label + "." + label + "." + label + "." + std::string(62, 'y')}) {
    SCOPED_TRACE(name);
    std::string error;
    std::string hint;
    EXPECT_FALSE(check_dns_name(name, &error, &hint));
    EXPECT_FALSE(error.empty());
    EXPECT_FALSE(hint.empty());
  }
}

TEST(DiscoveryNames, KubernetesLabels) {
  for (const std::string& label :
       {std::string("a"), std::string("greeter"), std::string("0abc"), std::string("a-b"),
        std::string("a--b"), std::string("123"), std::string(63, 'q')}) {
    SCOPED_TRACE(label);
    std::string error;
    std::string hint;
    EXPECT_TRUE(check_dns_label(label, &error, &hint)) << error;
  }
  for (const std::string& label :
       {std::string(""), std::string("A"), std::string("a_b"), std::string("a.b"),
        std::string("-a"), std::string("a-"), std::string(64, 'q'), std::string("a b")}) {
    SCOPED_TRACE(label);
    std::string error;
    std::string hint;
    EXPECT_FALSE(check_dns_label(label, &error, &hint));
    EXPECT_FALSE(error.empty());
    EXPECT_FALSE(hint.empty());
  }
}

TEST(DiscoveryNames, KubernetesPortNames) {
  for (const char* name : {"grpc", "h2c", "grpc-web", "abcdefghijklmno", "1a", "a1-b2"}) {
    SCOPED_TRACE(name);
    std::string error;
    std::string hint;
    EXPECT_TRUE(check_port_name(name, &error, &hint)) << error;
  }
  for (const char* name :
       {"", "GRPC", "grpc--web", "123", "1-2", "-grpc", "grpc-", "grpc_web", "abcdefghijklmnop"}) {
    SCOPED_TRACE(name);
    std::string error;
    std::string hint;
    EXPECT_FALSE(check_port_name(name, &error, &hint));
    EXPECT_FALSE(error.empty());
    EXPECT_FALSE(hint.empty());
  }
}

}  // namespace
}  // namespace h2mesh::config
