// EndpointSlice lists and watch events in the API server's wire format (the examples of
// shared/reference/kubernetes-api.md), port selection, conditions, and the per-slice cache.

#include "discovery/k8s_slices.h"

#include <gtest/gtest.h>

#include <string>

namespace h2mesh::discovery::k8s {
namespace {

using cluster::DiscoveredEndpoint;

// The list of the reference, verbatim in shape: two endpoints, one ready, one terminating.
constexpr char kList[] = R"({
  "kind": "EndpointSliceList",
  "apiVersion": "discovery.k8s.io/v1",
  "metadata": { "resourceVersion": "48213" },
  "items": [
    {
      "metadata": {
        "name": "greeter-7xq2k", "generateName": "greeter-", "namespace": "grpcdemo",
        "uid": "0d7c1f5e-5a0c-4d0b-9a43-2f1f3c8d9e01", "resourceVersion": "48190", "generation": 5,
        "creationTimestamp": "2026-11-26T14:00:00Z",
        "labels": { "kubernetes.io/service-name": "greeter",
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    "app": "greeter" },
        "annotations": { "endpoints.kubernetes.io/last-change-trigger-time": "2026-11-26T14:05:12Z" },
        "ownerReferences": [ { "apiVersion": "v1", "kind": "Service", "name": "greeter",
          "uid": "5b1c...", "controller": true, "blockOwnerDeletion": true } ]
      },
      "addressType": "IPv4",
      "endpoints": [
        { "addresses": ["10.244.1.10"],
          "conditions": { "ready": true, "serving": true, "terminating": false },
          "targetRef": { "kind": "Pod", "namespace": "grpcdemo",
                         "name": "greeter-server-7b8f684849-kx9pt", "uid": "9a1e..." },
          "nodeName": "node-1", "zone": "zone-a" },
        { "addresses": ["10.244.1.11"],
          "conditions": { "ready": false, "serving": true, "terminating": true },
          "targetRef": { "kind": "Pod", "namespace": "grpcdemo",
                         "name": "greeter-server-7b8f684849-m2q7w", "uid": "3c7d..." },
          "nodeName": "node-1" }
      ],
      "ports": [ { "name": "grpc", "protocol": "TCP", "port": 50051, "appProtocol": "kubernetes.io/h2c" } ]
    }
  ]
})";

// A slice object with the given endpoints/ports JSON (as in a watch event).
std::string slice_json(const std::string& name, const std::string& endpoints,
                       const std::string& ports, const std::string& type = "IPv4") {
  return R"({"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":")" +
         name + R"(","namespace":"grpcdemo","resourceVersion":"7"},"addressType":")" + type +
         R"(","endpoints":)" + endpoints + R"(,"ports":)" + ports + "}";
}

std::string event(const std::string& type, const std::string& object) {
  return R"({"type":")" + type + R"(","object":)" + object + "}";
}

EndpointSlice parse_one(const std::string& object) {
  auto ev = parse_watch_event(event("ADDED", object));
  EXPECT_TRUE(ev.ok()) << (ev.ok() ? "" : ev.error().message);
  return ev.ok() ? ev->slice : EndpointSlice{};
}

TEST(K8sSlices, ReferenceListParsesWithConditionsZoneAndPodNames) {
  auto list = parse_slice_list(kList);
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_EQ(list->resource_version, "48213");
  ASSERT_EQ(list->items.size(), 1u);
  const EndpointSlice& s = list->items[0];
  EXPECT_EQ(s.key, "grpcdemo/greeter-7xq2k");
  EXPECT_EQ(s.resource_version, "48190");
  EXPECT_EQ(s.address_type, "IPv4");
  ASSERT_EQ(s.endpoints.size(), 2u);
  EXPECT_EQ(s.endpoints[0].address, "10.244.1.10");
  EXPECT_TRUE(s.endpoints[0].ready);
  EXPECT_FALSE(s.endpoints[0].terminating);
  EXPECT_EQ(s.endpoints[0].zone, "zone-a");
  EXPECT_EQ(s.endpoints[0].name, "greeter-server-7b8f684849-kx9pt");
  EXPECT_FALSE(s.endpoints[1].ready);
  EXPECT_TRUE(s.endpoints[1].serving);
  EXPECT_TRUE(s.endpoints[1].terminating);
  EXPECT_EQ(s.endpoints[1].zone, "");
  ASSERT_EQ(s.ports.size(), 1u);
  EXPECT_EQ(s.ports[0].name, "grpc");
  EXPECT_EQ(s.ports[0].port, std::optional<uint16_t>(50051));

  std::string problem;
  auto eps = slice_endpoints(s, "grpc", &problem);
  EXPECT_EQ(problem, "");
  ASSERT_EQ(eps.size(), 2u);
  EXPECT_EQ(eps[0].address.to_string(), "10.244.1.10:50051");
  EXPECT_TRUE(eps[0].ready);
  EXPECT_FALSE(eps[0].terminating);
  EXPECT_EQ(eps[0].zone, "zone-a");
  EXPECT_EQ(eps[0].name, "greeter-server-7b8f684849-kx9pt");
  EXPECT_FALSE(eps[1].ready);
  EXPECT_TRUE(eps[1].terminating);
}

TEST(K8sSlices, MissingConditionsMeanReadyServingAndNotTerminating) {
  auto s = parse_one(
      slice_json("a", R"([{"addresses":["10.0.0.1"]},{"addresses":["10.0.0.2"],"conditions":{}},
               {"addresses":["10.0.0.3"],"conditions":{"ready":null,"terminating":null}}])",
                 R"([{"name":"grpc","port":50051}])"));
  ASSERT_EQ(s.endpoints.size(), 3u);
  for (const auto& e : s.endpoints) {
    EXPECT_TRUE(e.ready) << e.address;
    EXPECT_TRUE(e.serving) << e.address;
    EXPECT_FALSE(e.terminating) << e.address;
  }
}

TEST(K8sSlices, NullEndpointsAndPortsAreEmpty) {
  auto s = parse_one(slice_json("a", "null", "null"));
  EXPECT_TRUE(s.endpoints.empty());
  EXPECT_TRUE(s.ports.empty());
  std::string problem;
  EXPECT_TRUE(slice_endpoints(s, "grpc", &problem).empty());
  EXPECT_EQ(problem, "");  // an empty slice is not a problem
}

TEST(K8sSlices, NamedPortPicksThatPortAmongSeveral) {
  std::vector<SlicePort> ports = {{"metrics", 9090}, {"grpc", 50051}, {"", 8080}};
  EXPECT_EQ(select_port(ports, "grpc"), std::optional<uint16_t>(50051));
  EXPECT_EQ(select_port(ports, "metrics"), std::optional<uint16_t>(9090));
  EXPECT_EQ(select_port(ports, "http"), std::nullopt);
  EXPECT_EQ(select_port(ports, ""), std::nullopt);  // not exactly one port
}

TEST(K8sSlices, EmptyPortSettingTakesTheOnlyPort) {
  EXPECT_EQ(select_port({{"whatever", 7000}}, ""), std::optional<uint16_t>(7000));
  EXPECT_EQ(select_port({{"", 7000}}, ""), std::optional<uint16_t>(7000));
  EXPECT_EQ(select_port({}, ""), std::nullopt);
  EXPECT_EQ(select_port({{"grpc", std::nullopt}}, ""), std::nullopt);  // "all ports": no number
}

TEST(K8sSlices, NumericPortMatchesThePortValue) {
  std::vector<SlicePort> ports = {{"grpc", 50051}, {"metrics", 9090}};
  EXPECT_EQ(select_port(ports, "9090"), std::optional<uint16_t>(9090));
  EXPECT_EQ(select_port(ports, "50051"), std::optional<uint16_t>(50051));
  EXPECT_EQ(select_port(ports, "1234"), std::nullopt);
  // A slice that says "all ports" (port: null) takes any number.
  EXPECT_EQ(select_port({{"", std::nullopt}}, "1234"), std::optional<uint16_t>(1234));
  EXPECT_EQ(select_port(ports, "0"), std::nullopt);
  EXPECT_EQ(select_port(ports, "70000"), std::nullopt);
}

TEST(K8sSlices, SliceWithoutTheNamedPortIsReportedAndSkipped) {
  auto s = parse_one(slice_json("a", R"([{"addresses":["10.0.0.1"]}])",
                                R"([{"name":"http","port":80},{"port":null}])"));
  std::string problem;
  EXPECT_TRUE(slice_endpoints(s, "grpc", &problem).empty());
  EXPECT_EQ(problem, "slice grpcdemo/a has no port \"grpc\" among [http=80, (unnamed)=all]");
}

TEST(K8sSlices, OutOfRangePortIsNeverUsed) {
  auto s = parse_one(
      slice_json("a", R"([{"addresses":["10.0.0.1"]}])", R"([{"name":"grpc","port":123456}])"));
  std::string problem;
  EXPECT_TRUE(slice_endpoints(s, "grpc", &problem).empty());
  EXPECT_NE(problem, "");
}

TEST(K8sSlices, FqdnSliceIsSkipped) {
  auto s = parse_one(slice_json("a", R"([{"addresses":["greeter.example.com"]}])",
                                R"([{"name":"grpc","port":50051}])", "FQDN"));
  std::string problem;
  EXPECT_TRUE(slice_endpoints(s, "grpc", &problem).empty());
  EXPECT_EQ(problem, "slice grpcdemo/a: addressType FQDN is not used");
}

TEST(K8sSlices, Ipv6SliceGivesBracketedEndpoints) {
  auto s = parse_one(slice_json("a", R"([{"addresses":["fd00:10:244::a"]}])",
                                R"([{"name":"grpc","port":50051}])", "IPv6"));
  std::string problem;
  auto eps = slice_endpoints(s, "grpc", &problem);
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].address.host, "fd00:10:244::a");
  EXPECT_EQ(eps[0].address.to_string(), "[fd00:10:244::a]:50051");
}

TEST(K8sSlices, AddressesNotOfTheSliceTypeAreSkipped) {
  auto s = parse_one(slice_json(
      "a", R"([{"addresses":["10.0.0.1"]},{"addresses":["fd00::1"]},{"addresses":[]},{}])",
      R"([{"name":"grpc","port":50051}])"));
  std::string problem;
  auto eps = slice_endpoints(s, "grpc", &problem);
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].address.host, "10.0.0.1");
  EXPECT_EQ(problem, "slice grpcdemo/a: 3 endpoint(s) without an IPv4 address skipped");
}

TEST(K8sSlices, HostnameNamesAnEndpointWithoutTargetRef) {
  auto s = parse_one(
      slice_json("a", R"([{"addresses":["10.0.0.1"],"hostname":"web-0"}])", R"([{"port":80}])"));
  ASSERT_EQ(s.endpoints.size(), 1u);
  EXPECT_EQ(s.endpoints[0].name, "web-0");
}

TEST(K8sSlices, ReferenceWatchEventsParse) {
  auto added = parse_watch_event(
      R"j({"type":"ADDED","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"greeter-7xq2k","namespace":"grpcdemo","resourceVersion":"48230","labels":{"kubernetes.io/service-name":"greeter"}},"addressType":"IPv4","endpoints":[{"addresses":["10.244.1.10"],"conditions":{"ready":true,"serving":true,"terminating":false}}],"ports":[{"name":"grpc","protocol":"TCP","port":50051}]}})j");
  ASSERT_TRUE(added.ok()) << added.error().message;
  EXPECT_EQ(added->type, WatchEventType::Added);
  EXPECT_EQ(added->resource_version, "48230");
  EXPECT_EQ(added->slice.key, "grpcdemo/greeter-7xq2k");
  EXPECT_EQ(added->slice.endpoints.size(), 1u);

  auto modified = parse_watch_event(
      R"j({"type":"MODIFIED","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"greeter-7xq2k","namespace":"grpcdemo","resourceVersion":"48301","labels":{"kubernetes.io/service-name":"greeter"}},"addressType":"IPv4","endpoints":null,"ports":[{"name":"grpc","protocol":"TCP","port":50051}]}})j");
  ASSERT_TRUE(modified.ok()) << modified.error().message;
  EXPECT_EQ(modified->type, WatchEventType::Modified);
  EXPECT_TRUE(modified->slice.endpoints.empty());

  auto deleted = parse_watch_event(
      R"j({"type":"DELETED","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"greeter-7xq2k","namespace":"grpcdemo","resourceVersion":"48377"},"addressType":"IPv4","endpoints":null,"ports":null}})j");
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ(deleted->type, WatchEventType::Deleted);
  EXPECT_EQ(deleted->resource_version, "48377");

  auto bookmark = parse_watch_event(
      R"j({"type":"BOOKMARK","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"48950"}}})j");
  ASSERT_TRUE(bookmark.ok()) << bookmark.error().message;
  EXPECT_EQ(bookmark->type, WatchEventType::Bookmark);
  EXPECT_EQ(bookmark->resource_version, "48950");

  auto error = parse_watch_event(
      R"j({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 48213 (49102)","reason":"Expired","code":410}})j");
  ASSERT_TRUE(error.ok()) << error.error().message;
  EXPECT_EQ(error->type, WatchEventType::Error);
  EXPECT_EQ(error->status.code, 410);
  EXPECT_EQ(error->status.reason, "Expired");
  EXPECT_EQ(error->status.message, "too old resource version: 48213 (49102)");
}

TEST(K8sSlices, MalformedEventsAreErrorsNotCrashes) {
  for (const char* bad :
       {"", "not json", "[]", R"({"type":"ADDED"})", R"({"type":"ADDED","object":5})",
        R"({"type":"PATCHED","object":{}})", R"({"type":"BOOKMARK","object":{"metadata":{}}})",
        R"({"type":"ADDED","object":{"metadata":{"name":7}}})",
        R"({"type":"ADDED","object":{"metadata":"x"}})",
        R"({"type":"ADDED","object":{"metadata":{"name":"a"},"endpoints":"x","ports":{"a":1}}})"}) {
    auto ev = parse_watch_event(bad);
    // The last one is tolerated (wrongly typed lists are ignored); none may crash.
    if (std::string(bad).find("\"endpoints\":\"x\"") == std::string::npos) {
      EXPECT_FALSE(ev.ok()) << bad;
    }
  }
  // Wrong types inside an endpoint are ignored field by field.
  auto s = parse_one(slice_json(
      "a", R"([{"addresses":[5],"conditions":{"ready":"yes"},"zone":3,"targetRef":"x"}])",
      R"([{"name":5,"port":"50051"}])"));
  ASSERT_EQ(s.endpoints.size(), 1u);
  EXPECT_EQ(s.endpoints[0].address, "");
  EXPECT_TRUE(s.endpoints[0].ready);
  ASSERT_EQ(s.ports.size(), 1u);
  EXPECT_EQ(s.ports[0].port, std::nullopt);
}

TEST(K8sSlices, ListNeedsItemsAndResourceVersion) {
  EXPECT_FALSE(parse_slice_list(R"({"kind":"Status","code":500})").ok());
  EXPECT_FALSE(parse_slice_list(R"({"metadata":{},"items":[]})").ok());
  EXPECT_FALSE(parse_slice_list("<html>").ok());
  auto empty = parse_slice_list(R"({"metadata":{"resourceVersion":"5"},"items":null})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->items.empty());
  // An item without a name is an error: the cache could not key it.
  EXPECT_FALSE(
      parse_slice_list(R"({"metadata":{"resourceVersion":"5"},"items":[{"metadata":{}}]})").ok());
}

TEST(K8sSlices, StatusBodiesParseAndOtherBodiesDoNot) {
  auto st = parse_status(
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code, 401);
  EXPECT_EQ(st->message, "Unauthorized");
  EXPECT_FALSE(parse_status("<html><body>Bad Gateway</body></html>").has_value());
  EXPECT_FALSE(parse_status(R"({"kind":"EndpointSliceList"})").has_value());
}

// ---- SliceCache ------------------------------------------------------------------------------

WatchEvent slice_event(WatchEventType type, const std::string& name, const std::string& endpoints) {
  auto ev =
      parse_watch_event(event(type == WatchEventType::Deleted ? "DELETED" : "MODIFIED",
                              slice_json(name, endpoints, R"([{"name":"grpc","port":50051}])")));
  EXPECT_TRUE(ev.ok());
  ev->type = type;
  return *ev;
}

std::vector<std::string> addresses(const std::vector<DiscoveredEndpoint>& eps) {
  std::vector<std::string> out;
  for (const auto& e : eps) out.push_back(e.address.to_string());
  return out;
}

TEST(K8sSlices, CacheKeepsEachSliceApartAndReportsTheUnion) {
  SliceCache cache("grpc");
  auto list = parse_slice_list(kList);
  ASSERT_TRUE(list.ok());
  cache.reset(*list);
  EXPECT_EQ(addresses(cache.endpoints()),
            (std::vector<std::string>{"10.244.1.10:50051", "10.244.1.11:50051"}));

  cache.apply(
      slice_event(WatchEventType::Added, "greeter-b", R"([{"addresses":["10.244.2.20"]}])"));
  EXPECT_EQ(cache.slice_count(), 2u);
  EXPECT_EQ(
      addresses(cache.endpoints()),
      (std::vector<std::string>{"10.244.1.10:50051", "10.244.1.11:50051", "10.244.2.20:50051"}));

  // MODIFIED is the full new state of one slice: the other slice is untouched.
  cache.apply(slice_event(WatchEventType::Modified, "greeter-7xq2k", "null"));
  EXPECT_EQ(addresses(cache.endpoints()), (std::vector<std::string>{"10.244.2.20:50051"}));

  cache.apply(slice_event(WatchEventType::Deleted, "greeter-b", "null"));
  EXPECT_TRUE(cache.endpoints().empty());
  cache.apply(slice_event(WatchEventType::Deleted, "never-seen", "null"));  // harmless
  EXPECT_EQ(cache.slice_count(), 1u);

  // A LIST replaces everything (after a 410).
  cache.apply(slice_event(WatchEventType::Added, "greeter-c", R"([{"addresses":["10.9.9.9"]}])"));
  cache.reset(*list);
  EXPECT_EQ(addresses(cache.endpoints()),
            (std::vector<std::string>{"10.244.1.10:50051", "10.244.1.11:50051"}));
}

// Found by fuzz_k8s_slices: sorted as text, "10.244.1.10:50051" came before "10.244.1.1:50051"
// (':' sorts after '0'); the set is sorted by host, then port.
TEST(K8sSlices, UnionIsSortedByHostThenPort) {
  SliceCache cache("grpc");
  cache.apply(slice_event(WatchEventType::Added, "a",
                          R"([{"addresses":["10.244.1.10"]},{"addresses":["10.244.1.2"]}])"));
  cache.apply(slice_event(WatchEventType::Added, "b", R"([{"addresses":["10.244.1.1"]}])"));
  EXPECT_EQ(addresses(cache.endpoints()),
            (std::vector<std::string>{"10.244.1.1:50051", "10.244.1.10:50051",
                                      "10.244.1.2:50051"}));
}

TEST(K8sSlices, AddressInTwoSlicesKeepsItsMostUsableEntry) {
  SliceCache cache("grpc");
  // During a migration between slices an address can be listed twice.
  cache.apply(slice_event(
      WatchEventType::Added, "old",
      R"([{"addresses":["10.0.0.1"],"conditions":{"ready":false,"serving":false,"terminating":true}}])"));
  cache.apply(slice_event(WatchEventType::Added, "new", R"([{"addresses":["10.0.0.1"]}])"));
  auto eps = cache.endpoints();
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_TRUE(eps[0].ready);
  EXPECT_FALSE(eps[0].terminating);
  cache.apply(slice_event(WatchEventType::Deleted, "new", "null"));
  eps = cache.endpoints();
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_FALSE(eps[0].ready);
  EXPECT_TRUE(eps[0].terminating);
}

// "address ready|notready [serving] [terminating]" per endpoint, for readable comparisons.
std::vector<std::string> states(const std::vector<DiscoveredEndpoint>& eps) {
  std::vector<std::string> out;
  for (const auto& e : eps)
    out.push_back(e.address.to_string() + (e.ready ? " ready" : " notready") +
                  (e.serving ? " serving" : "") + (e.terminating ? " terminating" : ""));
  return out;
}

TEST(K8sSlices, NoReadyEndpointFallsBackToServingTerminatingOnes) {
  // A rollout: the old pods terminate (two still serve, one stopped serving), the new pod is not
  // ready yet. Calls go to the two that serve, as kube-proxy sends them.
  SliceCache cache("grpc");
  cache.apply(slice_event(
      WatchEventType::Added, "greeter-a",
      R"([{"addresses":["10.0.0.1"],"conditions":{"ready":false,"serving":true,"terminating":true}},
          {"addresses":["10.0.0.2"],"conditions":{"ready":false,"serving":false,"terminating":true}},
          {"addresses":["10.0.0.3"],"conditions":{"ready":false,"serving":true,"terminating":true}}])"));
  cache.apply(slice_event(
      WatchEventType::Added, "greeter-b",
      R"([{"addresses":["10.0.0.4"],"conditions":{"ready":false,"serving":false,"terminating":false}}])"));
  EXPECT_EQ(states(cache.endpoints()),
            (std::vector<std::string>{"10.0.0.1:50051 ready serving terminating",
                                      "10.0.0.2:50051 notready terminating",
                                      "10.0.0.3:50051 ready serving terminating",
                                      "10.0.0.4:50051 notready"}));

  // The new pod becomes ready: the terminating ones get no new calls any more.
  cache.apply(slice_event(WatchEventType::Modified, "greeter-b",
                          R"([{"addresses":["10.0.0.4"],"conditions":{"ready":true}}])"));
  EXPECT_EQ(states(cache.endpoints()),
            (std::vector<std::string>{"10.0.0.1:50051 notready serving terminating",
                                      "10.0.0.2:50051 notready terminating",
                                      "10.0.0.3:50051 notready serving terminating",
                                      "10.0.0.4:50051 ready serving"}));
}

TEST(K8sSlices, ReadyAndTerminatingTogetherIsNotReady) {
  // The API never sets both; if a slice did, terminating wins unless it is the fallback.
  SliceCache cache("grpc");
  cache.apply(slice_event(
      WatchEventType::Added, "a",
      R"([{"addresses":["10.0.0.1"],"conditions":{"ready":true,"serving":true,"terminating":true}},
          {"addresses":["10.0.0.2"]}])"));
  EXPECT_EQ(states(cache.endpoints()),
            (std::vector<std::string>{"10.0.0.1:50051 notready serving terminating",
                                      "10.0.0.2:50051 ready serving"}));
}

TEST(K8sSlices, NoFallbackWhenNothingServes) {
  SliceCache cache("grpc");
  cache.apply(slice_event(
      WatchEventType::Added, "a",
      R"([{"addresses":["10.0.0.1"],"conditions":{"ready":false,"serving":false,"terminating":true}},
          {"addresses":["10.0.0.2"],"conditions":{"ready":false,"serving":false}}])"));
  for (const auto& e : cache.endpoints()) EXPECT_FALSE(e.ready) << e.address.to_string();
}

TEST(K8sSlices, CacheCollectsProblemsOfUnusableSlices) {
  SliceCache cache("metrics");
  cache.apply(slice_event(WatchEventType::Added, "a", R"([{"addresses":["10.0.0.1"]}])"));
  EXPECT_TRUE(cache.endpoints().empty());
  auto problems = cache.take_problems();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("has no port \"metrics\""), std::string::npos) << problems[0];
  EXPECT_TRUE(cache.take_problems().empty());
}

}  // namespace
}  // namespace h2mesh::discovery::k8s
