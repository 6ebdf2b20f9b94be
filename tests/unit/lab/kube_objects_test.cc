// The demo API server's objects: request targets, the wire format of Services and
// EndpointSlices, and the store's resourceVersions and history.

#include "lab/kube_objects.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace h2mesh::lab {
namespace {

using nlohmann::json;

SliceEndpoint ep(const std::string& ip) { return {ip, true, true, false, ""}; }

ApiQuery query(Resource r, const std::string& namespace_ = "") {
  ApiQuery q;
  q.resource = r;
  q.namespace_ = namespace_;
  return q;
}

ServiceObject greeter_service() {
  return {"grpcdemo", "greeter", "10.96.0.10", {{"grpc", 50051, 8080, "kubernetes.io/h2c"}}};
}

EndpointSliceObject greeter_slice(std::vector<SliceEndpoint> endpoints) {
  return {"grpcdemo", "greeter-abc12", "greeter", std::move(endpoints), {{"grpc", 8080, 0, ""}}};
}

std::vector<json> parse_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

TEST(ApiTarget, CollectionsClusterWideAndPerNamespace) {
  auto q = parse_api_target("/api/v1/services");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->resource, Resource::Services);
  EXPECT_EQ(q->namespace_, "");
  EXPECT_FALSE(q->watch);
  q = parse_api_target("/api/v1/namespaces/grpcdemo/services");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->namespace_, "grpcdemo");
  q = parse_api_target("/apis/discovery.k8s.io/v1/endpointslices");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->resource, Resource::EndpointSlices);
  q = parse_api_target(
      "/apis/discovery.k8s.io/v1/namespaces/grpcdemo/endpointslices?labelSelector="
      "kubernetes.io%2Fservice-name%3Dgreeter&watch=1&resourceVersion=48213"
      "&allowWatchBookmarks=true&timeoutSeconds=300");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->namespace_, "grpcdemo");
  EXPECT_EQ(q->label_key, "kubernetes.io/service-name");
  EXPECT_EQ(q->label_value, "greeter");
  EXPECT_TRUE(q->watch);
  EXPECT_EQ(q->resource_version, "48213");
  EXPECT_TRUE(q->bookmarks);
  EXPECT_EQ(q->timeout_seconds, 300);
}

TEST(ApiTarget, UnknownPathsAreNotFoundAndUnservedQueriesBadRequests) {
  for (const char* t : {"/api/v1/pods", "/api/v1/namespaces/grpcdemo/services/greeter",
                        "/apis/discovery.k8s.io/v1beta1/endpointslices", "/healthz", "/"}) {
    auto q = parse_api_target(t);
    ASSERT_FALSE(q.ok()) << t;
    EXPECT_EQ(q.error().code, ErrorCode::NoRoute) << t;
  }
  for (const char* t :
       {"/api/v1/services?labelSelector=app!=greeter", "/api/v1/services?labelSelector=a=b,c=d",
        "/api/v1/services?watch=1&timeoutSeconds=soon"}) {
    auto q = parse_api_target(t);
    ASSERT_FALSE(q.ok()) << t;
    EXPECT_EQ(q.error().code, ErrorCode::InvalidArgument) << t;
  }
}

TEST(ServiceJson, CarriesClusterIpAndNamedPorts) {
  json j = service_json(greeter_service(), "1001", "uid-1", true);
  EXPECT_EQ(j["kind"], "Service");
  EXPECT_EQ(j["apiVersion"], "v1");
  EXPECT_EQ(j["metadata"]["namespace"], "grpcdemo");
  EXPECT_EQ(j["metadata"]["resourceVersion"], "1001");
  EXPECT_EQ(j["spec"]["clusterIP"], "10.96.0.10");
  EXPECT_EQ(j["spec"]["clusterIPs"], json::array({"10.96.0.10"}));
  EXPECT_EQ(j["spec"]["type"], "ClusterIP");
  ASSERT_EQ(j["spec"]["ports"].size(), 1u);
  EXPECT_EQ(j["spec"]["ports"][0]["name"], "grpc");
  EXPECT_EQ(j["spec"]["ports"][0]["port"], 50051);
  EXPECT_EQ(j["spec"]["ports"][0]["targetPort"], 8080);
  EXPECT_EQ(j["spec"]["ports"][0]["protocol"], "TCP");
  EXPECT_FALSE(service_json(greeter_service(), "1", "u", false).contains("kind"));
}

TEST(SliceJson, EndpointsWithConditionsAndTheServiceLabel) {
  json j = slice_json(greeter_slice({{"10.244.0.10", true, true, false, "greeter-1"},
                                     {"10.244.0.11", false, true, true, ""}}),
                      "1002", "uid-2", 3, true);
  EXPECT_EQ(j["kind"], "EndpointSlice");
  EXPECT_EQ(j["apiVersion"], "discovery.k8s.io/v1");
  EXPECT_EQ(j["metadata"]["labels"]["kubernetes.io/service-name"], "greeter");
  EXPECT_EQ(j["metadata"]["generation"], 3);
  EXPECT_EQ(j["addressType"], "IPv4");
  ASSERT_EQ(j["endpoints"].size(), 2u);
  EXPECT_EQ(j["endpoints"][0]["addresses"], json::array({"10.244.0.10"}));
  EXPECT_EQ(j["endpoints"][0]["conditions"],
            (json{{"ready", true}, {"serving", true}, {"terminating", false}}));
  EXPECT_EQ(j["endpoints"][0]["targetRef"]["name"], "greeter-1");
  EXPECT_EQ(j["endpoints"][1]["conditions"]["ready"], false);
  EXPECT_EQ(j["endpoints"][1]["conditions"]["terminating"], true);
  EXPECT_FALSE(j["endpoints"][1].contains("targetRef"));
  // The slice's port is the target port, matched to the Service's by name.
  EXPECT_EQ(j["ports"], json::array({{{"name", "grpc"}, {"protocol", "TCP"}, {"port", 8080}}}));
}

TEST(SliceJson, EmptyListsAreNullAsTheApiWritesThem) {
  EndpointSliceObject s = greeter_slice({});
  s.ports.clear();
  json j = slice_json(s, "1", "u", 1, false);
  EXPECT_TRUE(j["endpoints"].is_null());
  EXPECT_TRUE(j["ports"].is_null());
}

TEST(ObjectStore, ListCarriesTheStoresResourceVersionAndItemsWithoutKind) {
  ObjectStore store;
  const uint64_t rv1 = store.put_service(greeter_service());
  const uint64_t rv2 = store.put_slice(greeter_slice({ep("10.244.0.10")}));
  EXPECT_GT(rv2, rv1);
  json services = store.list(query(Resource::Services));
  EXPECT_EQ(services["kind"], "ServiceList");
  EXPECT_EQ(services["metadata"]["resourceVersion"], std::to_string(rv2));
  ASSERT_EQ(services["items"].size(), 1u);
  EXPECT_FALSE(services["items"][0].contains("kind"));
  EXPECT_EQ(services["items"][0]["metadata"]["resourceVersion"], std::to_string(rv1));
  json slices = store.list(query(Resource::EndpointSlices));
  EXPECT_EQ(slices["kind"], "EndpointSliceList");
  EXPECT_EQ(slices["apiVersion"], "discovery.k8s.io/v1");
  ASSERT_EQ(slices["items"].size(), 1u);
}

TEST(ObjectStore, ListIsFilteredByNamespaceAndServiceLabel) {
  ObjectStore store;
  store.put_slice(greeter_slice({ep("10.244.0.10")}));
  EndpointSliceObject other = greeter_slice({ep("10.244.0.20")});
  other.name = "other-xyz";
  other.service = "other";
  store.put_slice(other);
  EndpointSliceObject elsewhere = greeter_slice({ep("10.244.0.30")});
  elsewhere.namespace_ = "prod";
  store.put_slice(elsewhere);
  EXPECT_EQ(store.list(query(Resource::EndpointSlices)).at("items").size(), 3u);
  ApiQuery q = query(Resource::EndpointSlices, "grpcdemo");
  EXPECT_EQ(store.list(q).at("items").size(), 2u);
  q.label_key = "kubernetes.io/service-name";
  q.label_value = "greeter";
  json items = store.list(q).at("items");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]["endpoints"][0]["addresses"][0], "10.244.0.10");
}

TEST(ObjectStore, WatchHistoryIsAddedModifiedDeletedAfterTheGivenVersion) {
  ObjectStore store;
  const uint64_t start = store.put_service(greeter_service());
  store.put_slice(greeter_slice({ep("10.244.0.10")}));
  store.put_slice(greeter_slice({ep("10.244.0.10"), ep("10.244.0.11")}));
  const uint64_t deleted = store.remove(Resource::EndpointSlices, "grpcdemo", "greeter-abc12");
  EXPECT_EQ(store.remove(Resource::EndpointSlices, "grpcdemo", "greeter-abc12"), 0u);

  uint64_t now = 0;
  auto events = parse_lines(store.events_after(query(Resource::EndpointSlices), start, &now));
  EXPECT_EQ(now, deleted);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[1]["type"], "MODIFIED");
  EXPECT_EQ(events[2]["type"], "DELETED");
  for (const auto& e : events) {
    EXPECT_EQ(e["object"]["kind"], "EndpointSlice");  // watch objects carry their type
  }
  EXPECT_EQ(events[1]["object"]["endpoints"].size(), 2u);
  EXPECT_EQ(events[1]["object"]["metadata"]["generation"], 2);
  // The same object keeps its uid and creationTimestamp across versions.
  EXPECT_EQ(events[0]["object"]["metadata"]["uid"], events[1]["object"]["metadata"]["uid"]);
  EXPECT_EQ(events[0]["object"]["metadata"]["creationTimestamp"],
            events[1]["object"]["metadata"]["creationTimestamp"]);
  // DELETED carries the last state with the deletion's resourceVersion.
  EXPECT_EQ(events[2]["object"]["endpoints"].size(), 2u);
  EXPECT_EQ(events[2]["object"]["metadata"]["resourceVersion"], std::to_string(deleted));
  // Nothing after the newest version.
  EXPECT_EQ(store.events_after(query(Resource::EndpointSlices), deleted, &now), "");
  EXPECT_TRUE(store.list(query(Resource::EndpointSlices)).at("items").empty());
}

TEST(ObjectStore, StateAsAddedListsTheCurrentObjects) {
  ObjectStore store;
  store.put_service(greeter_service());
  ServiceObject other = greeter_service();
  other.name = "other";
  store.put_service(other);
  store.put_service(greeter_service());  // MODIFIED: still one object
  uint64_t now = 0;
  auto events = parse_lines(store.state_as_added(query(Resource::Services), &now));
  EXPECT_EQ(now, store.resource_version());
  ASSERT_EQ(events.size(), 2u);
  for (const auto& e : events) EXPECT_EQ(e["type"], "ADDED");
}

}  // namespace
}  // namespace h2mesh::lab
