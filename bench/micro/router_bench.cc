// Router::match, once per call at the end of the request headers: first match wins over the
// listener's routes. Routes alternate between an authority + prefix match and a full-method
// match, as a config that splits services and pins one method would.

#include <benchmark/benchmark.h>

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/router.h"

namespace h2mesh::proxy {
namespace {

std::string authority_of(size_t i) { return "svc" + std::to_string(i) + ".example:50051"; }
std::string service_of(size_t i) { return "/pkg" + std::to_string(i) + ".Service/"; }

// `count` specific routes, then (with_default) a route matching everything.
std::vector<config::Route> make_routes(size_t count, bool with_default) {
  std::vector<config::Route> routes;
  for (size_t i = 0; i < count; ++i) {
    config::Route r;
    r.cluster = "cluster-" + std::to_string(i);
    if (i % 2 == 0)
      r.match = config::RouteMatch{authority_of(i), service_of(i), ""};
    else
      r.match = config::RouteMatch{"", "", service_of(i) + "Method"};
    routes.push_back(std::move(r));
  }
  if (with_default) {
    config::Route r;  // no match: every call
    r.cluster = "default";
    routes.push_back(std::move(r));
  }
  return routes;
}

enum class Target {
  First,    // the call matches the first route
  Last,     // ... the last specific route
  Default,  // ... no specific route: the default one
  None,     // ... nothing (no default route): the proxy answers gRPC status 12
};

void BM_RouterMatch(benchmark::State& state, Target target) {
  const auto count = static_cast<size_t>(state.range(0));
  const Router router(make_routes(count, target != Target::None));
  size_t wanted = target == Target::Last ? count - 1 : 0;
  std::string authority = authority_of(wanted);
  std::string path = service_of(wanted) + "Method";
  if (target == Target::Default || target == Target::None) {
    authority = "other.example:50051";
    path = "/other.Service/Method";
  }
  const config::Route* expected = router.match(authority, path);
  if ((target == Target::None) != (expected == nullptr)) {
    state.SkipWithError("the route set does not match as the case expects");
    return;
  }
  std::string_view a = authority;
  std::string_view p = path;
  for (auto _ : state) {
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(p);
    const config::Route* route = router.match(a, p);
    benchmark::DoNotOptimize(route);
  }
  state.SetItemsProcessed(state.iterations());
}

void route_counts(benchmark::internal::Benchmark* b) { b->ArgName("routes")->Arg(4)->Arg(64); }

BENCHMARK_CAPTURE(BM_RouterMatch, first_route, Target::First)->Apply(route_counts);
BENCHMARK_CAPTURE(BM_RouterMatch, last_route, Target::Last)->Apply(route_counts);
BENCHMARK_CAPTURE(BM_RouterMatch, default_route, Target::Default)->Apply(route_counts);
BENCHMARK_CAPTURE(BM_RouterMatch, no_route, Target::None)->Apply(route_counts);

}  // namespace
}  // namespace h2mesh::proxy
