// listeners[].tls: one certificate or several (SNI), client certificates, ALPN, the allow-list,
// and the mistakes a user makes with them, each reported at its line.

#include <gtest/gtest.h>

#include <string>

#include "config/parser.h"
#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

// A listener whose tls map is `tls` (indented by 6), starting on line 5.
ParseResult parse_tls(const std::string& tls) {
  return parse(R"(
listeners:
  - name: grpc
    address: "127.0.0.1:0"
    tls:
)" + tls + R"(    routes:
      - cluster: greeter
clusters:
  - name: greeter
    endpoints: ["127.0.0.1:50052"]
)");
}

TEST(ConfigParserTls, SingleCertificateWithMutualTlsAndAllowList) {
  auto result = parse_tls(R"(      cert: /tls/tls.crt
      key: /tls/tls.key
      ca: /tls/ca.crt
      require_client_cert: true
      allowed_identities: ["spiffe://cluster.local/ns/demo/sa/client", "client.demo"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const auto& tls = result.config->listeners[0].tls;
  ASSERT_TRUE(tls.has_value());
  ASSERT_EQ(tls->certificates.size(), 1u);
  EXPECT_EQ(tls->certificates[0], (TlsCertificate{"/tls/tls.crt", "/tls/tls.key"}));
  EXPECT_EQ(tls->ca, "/tls/ca.crt");
  EXPECT_TRUE(tls->require_client_cert);
  EXPECT_EQ(tls->alpn, std::vector<std::string>{"h2"});
  EXPECT_EQ(tls->allowed_identities,
            (std::vector<std::string>{"spiffe://cluster.local/ns/demo/sa/client", "client.demo"}));
}

TEST(ConfigParserTls, ClearTextListenerHasNoTls) {
  auto result = parse_with_base("");
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_FALSE(result.config->listeners[0].tls.has_value());
}

TEST(ConfigParserTls, SeveralCertificatesKeepTheirOrder) {
  auto result = parse_tls(R"(      certificates:
        - { cert: a.crt, key: a.key }
        - { cert: b.crt, key: b.key }
      alpn: [h2, http/1.1]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const auto& tls = *result.config->listeners[0].tls;
  ASSERT_EQ(tls.certificates.size(), 2u);
  EXPECT_EQ(tls.certificates[0].cert, "a.crt");
  EXPECT_EQ(tls.certificates[1].key, "b.key");
  EXPECT_EQ(tls.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_FALSE(tls.require_client_cert);
}

TEST(ConfigParserTls, KeyWithoutCertificate) {
  EXPECT_TRUE(
      has_one_error(parse_tls("      key: /tls/tls.key\n"), 5, "missing required key 'cert'"));
}

TEST(ConfigParserTls, NoCertificateAtAll) {
  EXPECT_TRUE(has_one_error(parse_tls("      ca: /tls/ca.crt\n"), 5,
                            "a serving certificate is required", "tls: { cert:"));
}

TEST(ConfigParserTls, PairAndListTogether) {
  EXPECT_TRUE(has_one_error(parse_tls(R"(      cert: a.crt
      key: a.key
      certificates: [ { cert: b.crt, key: b.key } ]
)"),
                            5, "either cert/key or certificates"));
}

TEST(ConfigParserTls, ListItemWithoutKey) {
  EXPECT_TRUE(has_one_error(parse_tls(R"(      certificates:
        - { cert: a.crt, key: a.key }
        - { cert: b.crt }
)"),
                            7, "missing required key 'key'"));
}

TEST(ConfigParserTls, RequiringClientCertificatesNeedsCa) {
  EXPECT_TRUE(has_one_error(parse_tls(R"(      cert: a.crt
      key: a.key
      require_client_cert: true
)"),
                            7, "needs 'ca'"));
}

TEST(ConfigParserTls, AllowListNeedsCa) {
  EXPECT_TRUE(has_one_error(parse_tls(R"(      cert: a.crt
      key: a.key
      allowed_identities: ["spiffe://x/y"]
)"),
                            7, "needs 'ca'"));
}

TEST(ConfigParserTls, AlpnMustOfferH2) {
  EXPECT_TRUE(has_one_error(parse_tls(R"(      cert: a.crt
      key: a.key
      alpn: [http/1.1]
)"),
                            7, "must offer h2"));
}

TEST(ConfigParserTls, AlpnNameListedTwice) {
  EXPECT_TRUE(has_one_error(parse_tls(R"(      cert: a.crt
      key: a.key
      alpn: [h2, h2]
)"),
                            7, "listed twice"));
}

TEST(ConfigParserTls, UnknownKeyIsReportedWithSuggestion) {
  EXPECT_TRUE(has_one_error(parse_tls(R"(      cert: a.crt
      key: a.key
      require_client_certs: true
)"),
                            7, "require_client_certs", "require_client_cert"));
}

}  // namespace
}  // namespace h2mesh::config
