#include <gtest/gtest.h>

#include <string>

#include "config/parser.h"
#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

TEST(ConfigParserRateLimit, RouteAndListenerLimitsParse) {
  auto result = parse(R"(
listeners:
  - name: grpc
    address: "127.0.0.1:0"
    rate_limit: { calls_per_second: 1000, burst: 200 }
    routes:
      - match: { path: "/helloworld.Greeter/SayHello" }
        cluster: greeter
        rate_limit: { calls_per_second: 0.5, burst: 1 }
      - cluster: greeter
clusters:
  - name: greeter
    endpoints: ["127.0.0.1:50052"]
)");
  ASSERT_TRUE(result.ok()) << dump(result);
  const Listener& l = result.config->listeners[0];
  ASSERT_TRUE(l.rate_limit.has_value());
  EXPECT_EQ(*l.rate_limit, (RateLimit{1000, 200}));
  ASSERT_TRUE(l.routes[0].rate_limit.has_value());
  EXPECT_EQ(*l.routes[0].rate_limit, (RateLimit{0.5, 1}));
  EXPECT_FALSE(l.routes[1].rate_limit.has_value());
}

TEST(ConfigParserRateLimit, BurstDefaultsToOneSecondOfCallsAndAtLeastOne) {
  auto fast = parse_route("        rate_limit: { calls_per_second: 12.5 }\n");
  ASSERT_TRUE(fast.ok()) << dump(fast);
  EXPECT_EQ(fast.config->listeners[0].routes[0].rate_limit->burst, 13u);
  auto slow = parse_listener("    rate_limit: { calls_per_second: 0.1 }\n");
  ASSERT_TRUE(slow.ok()) << dump(slow);
  EXPECT_EQ(slow.config->listeners[0].rate_limit->burst, 1u);
}

TEST(ConfigParserRateLimit, ZeroOrNegativeRateIsAnErrorOnItsLine) {
  for (const char* rate : {"0", "-5", "0.0"}) {
    auto result =
        parse_route("        rate_limit:\n          calls_per_second: " + std::string(rate) + "\n");
    EXPECT_TRUE(has_one_error(result, 7, "rate_limit.calls_per_second: must be greater than 0",
                              "remove 'rate_limit'"))
        << rate;
  }
}

TEST(ConfigParserRateLimit, RateOutOfRangeOrNotANumberIsAnError) {
  EXPECT_TRUE(has_one_error(parse_listener("    rate_limit: { calls_per_second: 0.001 }\n"), 4,
                            "calls_per_second: 0.001 is out of range", "0.01..1000000"));
  EXPECT_TRUE(has_one_error(parse_listener("    rate_limit: { calls_per_second: fast }\n"), 4,
                            "calls_per_second: expected a number"));
}

TEST(ConfigParserRateLimit, BurstBelowOneIsAnErrorOnItsLine) {
  auto result = parse_route(R"(
        rate_limit:
          calls_per_second: 10
          burst: 0
)");
  EXPECT_TRUE(has_one_error(result, 8, "rate_limit.burst: 0 is out of range", "1..1000000"));
  EXPECT_TRUE(has_one_error(parse_listener("    rate_limit: { calls_per_second: 10, burst: -1 }\n"),
                            4, "burst"));
}

TEST(ConfigParserRateLimit, MissingRateAndUnknownKeysAreErrors) {
  EXPECT_TRUE(has_one_error(parse_route("        rate_limit: { burst: 10 }\n"), 6,
                            "calls_per_second", "calls_per_second: 100"));
  EXPECT_TRUE(has_one_error(
      parse_route("        rate_limit: { calls_per_second: 10, brust: 10 }\n"), 6, "brust",
      "burst"));
  EXPECT_TRUE(has_one_error(parse_listener("    rate_limit: 100\n"), 4, "rate_limit"));
}

}  // namespace
}  // namespace h2mesh::config
