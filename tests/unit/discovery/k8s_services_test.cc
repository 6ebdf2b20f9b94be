// Services (core/v1) as the API server sends them: cluster IPs (single and dual stack, headless,
// ExternalName), ports with their defaults, lists and watch events.

#include "discovery/k8s_services.h"

#include <gtest/gtest.h>

#include <string>

namespace h2mesh::discovery::k8s {
namespace {

// A Service as `kubectl get svc greeter -o json` shows it (managedFields and status included:
// the parser must skip what it does not need).
constexpr char kList[] = R"({
  "kind": "ServiceList", "apiVersion": "v1",
  "metadata": { "resourceVersion": "51007" },
  "items": [
    {
      "metadata": {
        "name": "greeter", "namespace": "grpcdemo", "uid": "5b1c0000-0000-4000-8000-000000000001",
        "resourceVersion": "50990", "creationTimestamp": "2026-11-26T14:00:00Z",
        "labels": { "app": "greeter" },
        "annotations": { "kubectl.kubernetes.io/last-applied-configuration": "{}" },
        "managedFields": [ { "manager": "kubectl-client-side-apply", "operation": "Update",
          "apiVersion": "v1", "time": "2026-11-26T14:00:00Z", "fieldsType": "FieldsV1",
          "fieldsV1": { "f:spec": { "f:ports": {} } } } ]
      },
      "spec": {
        "ports": [
          { "name": "grpc", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c", "port": 50051,
            "targetPort": "grpc" },
          { "name": "metrics", "port": 9090, "targetPort": 9100 },
          { "name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53 }
        ],
        "selector": { "app": "greeter" },
        "clusterIP": "10.96.120.15", "clusterIPs": [ "10.96.120.15", "fd00:10:96:0:0:0:0:78" ],
        "type": "ClusterIP", "sessionAffinity": "None", "ipFamilies": [ "IPv4", "IPv6" ],
        "ipFamilyPolicy": "PreferDualStack", "internalTrafficPolicy": "Cluster"
      },
      "status": { "loadBalancer": {} }
    },
    {
      "metadata": { "name": "greeter-headless", "namespace": "grpcdemo" },
      "spec": { "clusterIP": "None", "clusterIPs": [ "None" ],
                "ports": [ { "name": "grpc", "port": 50051 } ] }
    },
    {
      "metadata": { "name": "billing", "namespace": "grpcdemo" },
      "spec": { "type": "ExternalName", "externalName": "billing.example.com" }
    },
    {
      "metadata": { "name": "legacy", "namespace": "other" },
      "spec": { "clusterIP": "10.96.0.77", "ports": [ { "port": 8080 } ] }
    }
  ]
})";

TEST(K8sServices, ListGivesClusterIpsPortsAndKinds) {
  auto list = parse_service_list(kList);
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_EQ(list->resource_version, "51007");
  ASSERT_EQ(list->items.size(), 4u);

  const Service& greeter = list->items[0];
  EXPECT_EQ(greeter.key, "grpcdemo/greeter");
  EXPECT_EQ(greeter.namespace_, "grpcdemo");
  EXPECT_EQ(greeter.name, "greeter");
  EXPECT_EQ(greeter.type, "ClusterIP");
  EXPECT_FALSE(greeter.headless);
  // The IPv6 address in the canonical text a socket's address is formatted with.
  EXPECT_EQ(greeter.cluster_ips, (std::vector<std::string>{"10.96.120.15", "fd00:10:96::78"}));
  EXPECT_TRUE(greeter.has_cluster_ip());
  ASSERT_EQ(greeter.ports.size(), 3u);
  EXPECT_EQ(greeter.ports[0], (ServicePort{"grpc", "TCP", 50051, "kubernetes.io/h2c"}));
  EXPECT_EQ(greeter.ports[1], (ServicePort{"metrics", "TCP", 9090, ""}));  // TCP by default
  EXPECT_EQ(greeter.ports[2], (ServicePort{"dns", "UDP", 53, ""}));

  const Service& headless = list->items[1];
  EXPECT_TRUE(headless.headless);
  EXPECT_TRUE(headless.cluster_ips.empty());
  EXPECT_FALSE(headless.has_cluster_ip());

  const Service& external = list->items[2];
  EXPECT_EQ(external.type, "ExternalName");
  EXPECT_FALSE(external.has_cluster_ip());

  // Before dual stack: clusterIP alone; an unnamed single port.
  const Service& legacy = list->items[3];
  EXPECT_EQ(legacy.key, "other/legacy");
  EXPECT_EQ(legacy.cluster_ips, (std::vector<std::string>{"10.96.0.77"}));
  ASSERT_EQ(legacy.ports.size(), 1u);
  EXPECT_EQ(legacy.ports[0], (ServicePort{"", "TCP", 8080, ""}));
}

TEST(K8sServices, WatchEventsCarryTheServiceOrTheStatus) {
  auto added = parse_service_event(
      R"({"type":"ADDED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"a",)"
      R"("namespace":"n","resourceVersion":"9"},"spec":{"clusterIP":"10.0.0.9",)"
      R"("ports":[{"name":"grpc","port":7000}]}}})");
  ASSERT_TRUE(added.ok()) << added.error().message;
  EXPECT_EQ(added->type, WatchEventType::Added);
  EXPECT_EQ(added->resource_version, "9");
  EXPECT_EQ(added->service.key, "n/a");
  EXPECT_EQ(added->service.cluster_ips, std::vector<std::string>{"10.0.0.9"});

  // A DELETED object is the last state; the name is what matters.
  auto deleted = parse_service_event(
      R"({"type":"DELETED","object":{"kind":"Service","metadata":{"name":"a","namespace":"n",)"
      R"("resourceVersion":"10"}}})");
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ(deleted->type, WatchEventType::Deleted);
  EXPECT_EQ(deleted->service.key, "n/a");

  auto bookmark = parse_service_event(
      R"({"type":"BOOKMARK","object":{"kind":"Service","metadata":{"resourceVersion":"77"}}})");
  ASSERT_TRUE(bookmark.ok()) << bookmark.error().message;
  EXPECT_EQ(bookmark->type, WatchEventType::Bookmark);
  EXPECT_EQ(bookmark->resource_version, "77");

  auto gone = parse_service_event(
      R"({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},)"
      R"j("status":"Failure","message":"too old resource version: 9 (80)","reason":"Expired",)j"
      R"("code":410}})");
  ASSERT_TRUE(gone.ok()) << gone.error().message;
  EXPECT_EQ(gone->type, WatchEventType::Error);
  EXPECT_EQ(gone->status.code, 410);
  EXPECT_EQ(gone->status.reason, "Expired");
}

TEST(K8sServices, MalformedInputIsAnErrorNotAGuess) {
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> lists = {
      {"<html>", "the Service list is not valid JSON"},
      {"[]", "the Service list is not a JSON object"},
      {R"({"kind":"Status","metadata":{}})", "the Service list has no items (kind Status)"},
      {R"({"metadata":{},"items":[]})", "the Service list has no resourceVersion"},
      {R"({"metadata":{"resourceVersion":"1"},"items":[1]})",
       "an item of the Service list is not a JSON object"},
      {R"({"metadata":{"resourceVersion":"1"},"items":[{"spec":{}}]})",
       "a Service has no metadata"},
  };
  for (const auto& c : lists) {
    auto r = parse_service_list(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().message, c.message) << c.text;
  }
  auto empty = parse_service_list(R"({"metadata":{"resourceVersion":"5"},"items":null})");
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  EXPECT_TRUE(empty->items.empty());

  const std::vector<Case> events = {
      {R"({"type":"ADDED"})", "a watch event has no object"},
      {R"({"type":"RESYNC","object":{}})", "unknown watch event type \"RESYNC\""},
      {R"({"type":"ADDED","object":{"metadata":{"namespace":"n"}}})",
       "a Service has no metadata.name"},
  };
  for (const auto& c : events) {
    auto r = parse_service_event(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().message, c.message) << c.text;
  }
}

TEST(K8sServices, OutOfRangePortsAndBadAddressesAreLeftOut) {
  auto ev = parse_service_event(
      R"({"type":"ADDED","object":{"metadata":{"name":"a","namespace":"n"},"spec":{)"
      R"("clusterIPs":["10.0.0.300","","10.0.0.3"],)"
      R"("ports":[{"name":"big","port":70000},{"name":"none"},{"name":"ok","port":1}]}}})");
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  EXPECT_EQ(ev->service.cluster_ips, std::vector<std::string>{"10.0.0.3"});
  ASSERT_EQ(ev->service.ports.size(), 3u);
  EXPECT_EQ(ev->service.ports[0].port, 0);  // never used
  EXPECT_EQ(ev->service.ports[1].port, 0);
  EXPECT_EQ(ev->service.ports[2].port, 1);
}

}  // namespace
}  // namespace h2mesh::discovery::k8s
