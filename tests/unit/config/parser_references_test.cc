#include <gtest/gtest.h>

#include <string>

#include "config/parser.h"
#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

// ---- Duplicates and cross references ----------------------------------------------------------

TEST(ConfigParser, DuplicateListenerNamesAreAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes: [{ cluster: c }]
  - name: public
    address: "127.0.0.1:0"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 5, "listeners[1].name: duplicate listener name 'public'",
                            "first defined on line 2"));
}

TEST(ConfigParser, DuplicateClusterNamesAreAnError) {
  auto result = parse_cluster(R"(
    endpoints: ["127.0.0.1:1"]
  - name: greeter
    endpoints: ["127.0.0.1:2"]
)");
  ASSERT_TRUE(has_one_error(result, 9, "clusters[1].name: duplicate cluster name 'greeter'",
                            "first defined on line 7"));
}

TEST(ConfigParser, DuplicateListenerAddressesAreAnError) {
  auto result = parse(R"(
listeners:
  - name: a
    address: "127.0.0.1:8080"
    routes: [{ cluster: c }]
  - name: b
    address: "127.0.0.1:8080"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 6, "address 127.0.0.1:8080 is already used", "line 2"));
}

TEST(ConfigParser, DuplicateIpv6ListenerAddressesAreFoundInAnySpelling) {
  auto result = parse(R"(
listeners:
  - name: a
    address: "[::1]:8080"
    routes: [{ cluster: c }]
  - name: b
    address: "[0:0::1]:8080"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 6, "address [::1]:8080 is already used"));
}

TEST(ConfigParser, AdminAddressUsedByAListenerIsAnError) {
  auto result = parse(R"(
admin:
  address: "127.0.0.1:9000"
listeners:
  - name: public
    address: "127.0.0.1:9000"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 2, "also the address of listener 'public'", "own port"));
}

TEST(ConfigParser, RouteToUnknownClusterListsDefinedClusters) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - cluster: payments
clusters:
  - name: greeter
    endpoints: ["127.0.0.1:1"]
  - name: echo
    endpoints: ["127.0.0.1:2"]
)");
  ASSERT_TRUE(has_one_error(result, 5, "routes[0].cluster: unknown cluster 'payments'",
                            "defined clusters: greeter, echo"));
  EXPECT_EQ(result.errors[0].column, 18);
}

TEST(ConfigParser, RouteToMisspelledClusterSuggestsIt) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - cluster: greter
clusters:
  - name: greeter
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 5, "unknown cluster 'greter'", "did you mean 'greeter'?"));
}

TEST(ConfigParser, DefaultRouteBeforeOtherRoutesIsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - cluster: c
      - match: { prefix: "/a/" }
        cluster: c
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 5, "routes[0]: the default route (no 'match') must be the last",
                            "routes after it (from line 6) are unreachable"));
}

TEST(ConfigParser, PrefixAndPathTogetherAreAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - match:
          prefix: "/helloworld.Greeter/"
          path: "/helloworld.Greeter/SayHello"
        cluster: c
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 7, "'prefix' and 'path' cannot both be set", "whole service"));
}

TEST(ConfigParser, PrefixWithoutLeadingSlashIsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - match: { prefix: "helloworld.Greeter/" }
        cluster: c
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 5, "must start with '/'", "/helloworld.Greeter/"));
}

TEST(ConfigParser, PathThatIsNotServiceSlashMethodIsAnError) {
  for (const char* bad : {"helloworld.Greeter/SayHello", "/helloworld.Greeter/",
                          "/helloworld.Greeter", "//SayHello", "/a/b/c"}) {
    std::string text = R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - match: { path: ")" +
                       std::string(bad) + R"(" }
        cluster: c
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)";
    SCOPED_TRACE(bad);
    ASSERT_TRUE(
        has_one_error(parse(text), 5, "is not /service/method", "/helloworld.Greeter/SayHello"));
  }
}

TEST(ConfigParser, EmptyMatchIsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - match: {}
        cluster: c
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(
      has_one_error(result, 5, "a match needs 'authority', 'prefix' or 'path'", "default route"));
}

TEST(ConfigParser, EmptyAuthorityIsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "127.0.0.1:0"
    routes:
      - match: { authority: "" }
        cluster: c
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 5, "match.authority: must not be empty"));
}

TEST(ConfigParser, DuplicateEndpointsAreAnError) {
  auto result = parse_cluster(R"(
    endpoints:
      - "127.0.0.1:50052"
      - { address: "127.0.0.1:50052", weight: 2 }
)");
  ASSERT_TRUE(has_one_error(result, 10, "endpoints[1]: duplicate endpoint 127.0.0.1:50052",
                            "already listed on line 9"));
}

// ---- Addresses --------------------------------------------------------------------------------

TEST(ConfigParser, EndpointHostnameAsksForDnsDiscovery) {
  auto result = parse_cluster(R"(
    endpoints: ["greeter.svc.cluster.local:50051"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "'greeter.svc.cluster.local' is not an IPv4 address",
                            "static endpoints are IP addresses; a hostname needs DNS discovery"));
}

TEST(ConfigParser, EndpointWithPortZeroIsAnError) {
  auto result = parse_cluster(R"(
    endpoints: ["127.0.0.1:0"]
)");
  ASSERT_TRUE(has_one_error(result, 8, "an endpoint cannot have port 0", "1..65535"));
}

TEST(ConfigParser, EndpointWithoutPortIsAnError) {
  auto result = parse_cluster(R"(
    endpoints:
      - 10.0.0.1
)");
  ASSERT_TRUE(has_one_error(result, 9, "invalid address '10.0.0.1': no port", "127.0.0.1:50051"));
}

TEST(ConfigParser, ListenerHostnameAsksForAnIp) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "localhost:50051"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 3, "'localhost' is not an IPv4 address", "0.0.0.0"));
}

TEST(ConfigParser, UnbracketedIpv6ListenerIsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "::1:50051"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 3, "must be in brackets"));
}

TEST(ConfigParser, ListenerPortAbove65535IsAnError) {
  auto result = parse(R"(
listeners:
  - name: public
    address: "0.0.0.0:65536"
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
)");
  ASSERT_TRUE(has_one_error(result, 3, "port '65536'", "0..65535"));
}

TEST(ConfigParser, MalformedAdminAddressIsAnError) {
  auto result = parse_with_base(R"(
admin:
  address: "300.1.1.1:9901"
)");
  ASSERT_TRUE(has_one_error(result, 2, "admin.address: invalid address '300.1.1.1:9901'", "IPv4"));
}

TEST(SocketAddress, ParsesIpv4AndIpv6) {
  SocketAddress address;
  std::string error;
  ASSERT_TRUE(parse_socket_address("10.1.2.3:80", &address, &error)) << error;
  EXPECT_EQ(address, (SocketAddress{"10.1.2.3", 80}));
  EXPECT_FALSE(address.is_ipv6());
  ASSERT_TRUE(parse_socket_address("[::1]:65535", &address, &error)) << error;
  EXPECT_EQ(address, (SocketAddress{"::1", 65535}));
  EXPECT_EQ(address.to_string(), "[::1]:65535");
  ASSERT_TRUE(parse_socket_address("[2001:DB8:0:0::1]:0", &address, &error)) << error;
  EXPECT_EQ(address.host, "2001:db8::1");
  EXPECT_EQ(address.port, 0);
}

TEST(SocketAddress, RejectsMalformedAddresses) {
  for (const char* bad :
       {"", "10.0.0.1", "10.0.0.1:", ":80", "10.0.0.1:http", "10.0.0.1:-1", "10.0.0.1:123456",
        "10.0.0:80", "010.0.0.1:80", "[::1]", "[::1:80", "[::1]80", "[10.0.0.1]:80", "::1:80",
        "host:80", "[fe80::1%eth0]:80", " 10.0.0.1:80"}) {
    SocketAddress address;
    std::string error;
    EXPECT_FALSE(parse_socket_address(bad, &address, &error)) << "'" << bad << "'";
    EXPECT_NE(error.find("invalid address"), std::string::npos) << "'" << bad << "': " << error;
  }
}

}  // namespace
}  // namespace h2mesh::config
