#include "proxy/router.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace h2mesh::proxy {
namespace {

config::Route route(std::string cluster, std::string authority = "", std::string prefix = "",
                    std::string path = "") {
  config::Route r;
  r.match = config::RouteMatch{std::move(authority), std::move(prefix), std::move(path)};
  r.cluster = std::move(cluster);
  return r;
}

config::Route default_route(std::string cluster) {
  config::Route r;
  r.cluster = std::move(cluster);
  return r;
}

// The cluster of the route the router picks, or "<none>".
std::string routed(const Router& router, std::string_view authority, std::string_view path) {
  const config::Route* r = router.match(authority, path);
  return r ? r->cluster : "<none>";
}

TEST(Router, FirstMatchingRouteWins) {
  Router router({route("greeter-v2", "", "/helloworld.Greeter/"),
                 route("greeter-v1", "", "/helloworld.Greeter/"),
                 route("exact", "", "", "/helloworld.Greeter/SayHello")});
  EXPECT_EQ(routed(router, "proxy:8080", "/helloworld.Greeter/SayHello"), "greeter-v2");
}

TEST(Router, MoreSpecificRouteListedFirstTakesPrecedence) {
  Router router({route("say-hello", "", "", "/helloworld.Greeter/SayHello"),
                 route("greeter", "", "/helloworld.Greeter/")});
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayHello"), "say-hello");
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayGoodbye"), "greeter");
}

TEST(Router, PrefixMatchesMethodsOfAService) {
  Router router({route("greeter", "", "/helloworld.Greeter/")});
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayHello"), "greeter");
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/"), "greeter");
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter"), "<none>");  // shorter than the prefix
  EXPECT_EQ(routed(router, "a", "/helloworld.GreeterStats/Get"), "<none>");
  EXPECT_EQ(routed(router, "a", "/other.Service/helloworld.Greeter/"), "<none>");
}

TEST(Router, FullPathMatchesOnlyThatMethod) {
  Router router({route("hello", "", "", "/helloworld.Greeter/SayHello")});
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayHello"), "hello");
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayHelloAgain"), "<none>");
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/sayhello"), "<none>");  // case sensitive
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayHello/"), "<none>");
}

TEST(Router, AuthorityMatchIsExactAndIncludesThePort) {
  Router router({route("internal", "greeter.internal:50051"), route("public", "greeter.example")});
  EXPECT_EQ(routed(router, "greeter.internal:50051", "/x/Y"), "internal");
  EXPECT_EQ(routed(router, "greeter.internal", "/x/Y"), "<none>");
  EXPECT_EQ(routed(router, "greeter.internal:50052", "/x/Y"), "<none>");
  EXPECT_EQ(routed(router, "greeter.example", "/x/Y"), "public");
  EXPECT_EQ(routed(router, "greeter.example:443", "/x/Y"), "<none>");
  EXPECT_EQ(routed(router, "", "/x/Y"), "<none>");
}

TEST(Router, AuthorityAndPrefixMustBothMatch) {
  Router router({route("a-greeter", "a", "/helloworld.Greeter/"), route("a-any", "a")});
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayHello"), "a-greeter");
  EXPECT_EQ(routed(router, "a", "/other.S/M"), "a-any");
  EXPECT_EQ(routed(router, "b", "/helloworld.Greeter/SayHello"), "<none>");
}

TEST(Router, EmptyMatchFieldsMatchAnything) {
  Router router({route("everything")});
  EXPECT_EQ(routed(router, "", ""), "everything");
  EXPECT_EQ(routed(router, "any", "/a/b"), "everything");
}

TEST(Router, DefaultRouteCatchesWhatEarlierRoutesMiss) {
  Router router({route("greeter", "", "/helloworld.Greeter/"), default_route("fallback")});
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayHello"), "greeter");
  EXPECT_EQ(routed(router, "a", "/grpc.health.v1.Health/Check"), "fallback");
  EXPECT_EQ(routed(router, "", ""), "fallback");
}

TEST(Router, DefaultRouteFirstShadowsEverythingAfterIt) {
  Router router({default_route("fallback"), route("greeter", "", "/helloworld.Greeter/")});
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayHello"), "fallback");
}

TEST(Router, NoMatchingRouteGivesNull) {
  Router router({route("greeter", "", "/helloworld.Greeter/"), route("hello", "h")});
  EXPECT_EQ(router.match("x", "/grpc.health.v1.Health/Check"), nullptr);
}

TEST(Router, NoRoutesAtAllGivesNull) {
  Router router({});
  EXPECT_EQ(router.match("a", "/helloworld.Greeter/SayHello"), nullptr);
}

TEST(Router, MatchedRouteCarriesItsTimeoutAndRetryPolicy) {
  config::Route slow = route("greeter", "", "/helloworld.Greeter/");
  slow.max_timeout = std::chrono::milliseconds(1500);
  slow.retry.max_attempts = 1;
  slow.line = 12;
  config::Route fallback = default_route("fallback");
  fallback.retry.retry_on = {14};
  Router router({slow, fallback});
  const config::Route* a = router.match("x", "/helloworld.Greeter/SayHello");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->max_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(a->retry.max_attempts, 1u);
  EXPECT_EQ(a->line, 12);
  const config::Route* b = router.match("x", "/other.S/M");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->retry.retry_on, std::vector<int>{14});
  // The same call always gets the same route object (its retry budget is found by its index).
  EXPECT_EQ(router.match("y", "/helloworld.Greeter/Other"), a);
}

TEST(Router, RouterKeepsItsOwnCopyOfTheRoutes) {
  std::vector<config::Route> routes = {route("greeter", "", "/helloworld.Greeter/")};
  Router router(routes);
  routes.clear();
  routes.shrink_to_fit();
  EXPECT_EQ(routed(router, "a", "/helloworld.Greeter/SayHello"), "greeter");
}

// A listener context with the given routes, as a worker makes one for each config.
std::shared_ptr<ListenerContext> context_with(std::vector<config::Route> routes) {
  auto cfg = std::make_shared<config::Config>();
  cfg->listeners.emplace_back();
  cfg->listeners[0].name = "grpc";
  cfg->listeners[0].routes = std::move(routes);
  return std::make_shared<ListenerContext>(cfg, 0);
}

// Spends the budget of `route`: retries with a zero ratio and 1 per second until refused.
int spend(const ListenerContext& ctx, const config::Route* route, TimePoint now) {
  int n = 0;
  while (ctx.budget(route).try_retry(now, 0.0, 1) && n < 100) ++n;
  return n;
}

TEST(ListenerContext, EachRouteHasItsOwnBudget) {
  auto ctx = context_with({route("a", "", "/a/"), default_route("b")});
  const config::Route* a = ctx->router.match("x", "/a/M");
  const config::Route* b = ctx->router.match("x", "/b/M");
  const TimePoint now{std::chrono::seconds(100)};
  EXPECT_EQ(spend(*ctx, a, now), 10);  // 1 per second over the 10 s window
  EXPECT_EQ(spend(*ctx, b, now), 10) << "route b's budget is not route a's";
  EXPECT_EQ(&ctx->budget(a), &ctx->budget(ctx->router.match("y", "/a/Other")));
}

// Reloads replace the context: budgets do not pile up, a route that stays keeps its spent
// window, and a route that changed starts afresh.
TEST(ListenerContext, ReloadedContextInheritsTheBudgetsOfRoutesThatStay) {
  const TimePoint now{std::chrono::seconds(100)};
  auto before = context_with({route("a", "", "/a/"), route("b", "", "/b/"), default_route("c")});
  spend(*before, before->router.match("", "/a/M"), now);
  spend(*before, before->router.match("", "/b/M"), now);
  // Route b now goes to another cluster; a new route comes first; a and the default stay.
  auto after = context_with(
      {route("n", "", "/n/"), route("a", "", "/a/"), route("b2", "", "/b/"), default_route("c")});
  after->inherit_budgets(*before);
  EXPECT_EQ(spend(*after, after->router.match("", "/a/M"), now), 0) << "a's budget is spent";
  EXPECT_EQ(spend(*after, after->router.match("", "/b/M"), now), 10) << "b changed: fresh";
  EXPECT_EQ(spend(*after, after->router.match("", "/n/M"), now), 10) << "new route: fresh";
  EXPECT_EQ(spend(*after, after->router.match("", "/c/M"), now), 10);
}

}  // namespace
}  // namespace h2mesh::proxy
