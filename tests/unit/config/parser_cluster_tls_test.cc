// clusters[].tls: TLS towards a cluster's endpoints.

#include <gtest/gtest.h>

#include <string>

#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

// `tls:` on line 8, then `tls_body` from line 9 (keys indented by 6 spaces); endpoints after.
ParseResult parse_tls(std::string_view tls_body) {
  std::string body(tls_body);
  if (body.starts_with('\n')) body.erase(0, 1);
  return parse_cluster("    tls:\n" + body + "    endpoints: [\"127.0.0.1:50052\"]\n");
}

TEST(ClusterTls, AbsentMeansClearText) {
  auto result = parse_cluster("    endpoints: [\"127.0.0.1:50052\"]\n");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_FALSE(result.config->clusters[0].tls.has_value());
}

TEST(ClusterTls, EveryKeyIsRead) {
  auto result = parse_tls(R"(
      ca: /etc/ssl/ca.crt
      cert: /etc/h2mesh/client.crt
      key: /etc/h2mesh/client.key
      server_name: greeter.internal
      san: ["spiffe://cluster.local/ns/grpcdemo/sa/greeter", greeter.internal, 10.0.0.1, "::1"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const ClusterTls& tls = *result.config->clusters[0].tls;
  EXPECT_EQ(tls.ca, "/etc/ssl/ca.crt");
  EXPECT_EQ(tls.cert, "/etc/h2mesh/client.crt");
  EXPECT_EQ(tls.key, "/etc/h2mesh/client.key");
  EXPECT_EQ(tls.server_name, "greeter.internal");
  EXPECT_EQ(tls.san, (std::vector<std::string>{"spiffe://cluster.local/ns/grpcdemo/sa/greeter",
                                               "greeter.internal", "10.0.0.1", "::1"}));
}

TEST(ClusterTls, EmptyMapUsesTheSystemStoreAndTheEndpointAddress) {
  auto result = parse_cluster("    tls: {}\n    endpoints: [\"127.0.0.1:50052\"]\n");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(*result.config->clusters[0].tls, ClusterTls{});
}

TEST(ClusterTls, CertAndKeyGoTogether) {
  EXPECT_TRUE(has_one_error(parse_tls("      cert: /c.crt\n"), 9,
                            "clusters[0].tls: 'cert' needs 'key'", "add key: FILE"));
  EXPECT_TRUE(has_one_error(parse_tls("      key: /c.key\n"), 9,
                            "clusters[0].tls: 'key' needs 'cert'", "add cert: FILE"));
}

TEST(ClusterTls, BadValuesAreReportedWhereWritten) {
  struct Case {
    std::string yaml;
    std::string message;
    std::string hint;
  };
  const std::vector<Case> cases = {
      {"      ca: \"\"\n", "clusters[0].tls.ca: must not be empty", "PEM file"},
      {"      ca: ~/ca.crt\n", "'~/ca.crt' is not expanded", "full path"},
      {"      server_name: 10.0.0.1\n", "'10.0.0.1' is an IP address", "leave server_name out"},
      {"      server_name: \"greeter:443\"\n", "character ':' is not allowed", ""},
      {"      san: []\n", "at least one SAN is required", ""},
      {"      san: [\"spiffe://\"]\n", "'spiffe://' is not a complete URI", "spiffe://"},
      {"      san: [\"bad name\"]\n", "character ' ' is not allowed", "DNS name"},
      {"      alpn: [h2]\n", "unknown key 'alpn'", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    EXPECT_TRUE(has_one_error(parse_tls(c.yaml), 9, c.message, c.hint));
  }
}

TEST(ClusterTls, MustBeAMap) {
  EXPECT_TRUE(has_one_error(parse_cluster("    tls: true\n    endpoints: [\"127.0.0.1:50052\"]\n"),
                            8, "clusters[0].tls: expected a map"));
}

}  // namespace
}  // namespace h2mesh::config
