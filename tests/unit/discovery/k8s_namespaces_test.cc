// Namespaces (core/v1) as the API server sends them: names and labels from a LIST and from
// watch events (the admission webhook's view of which namespaces ask for injection).

#include "discovery/k8s_namespaces.h"

#include <gtest/gtest.h>

namespace h2mesh::discovery::k8s {
namespace {

constexpr char kList[] = R"({
  "kind": "NamespaceList", "apiVersion": "v1",
  "metadata": { "resourceVersion": "7001", "continue": "next-page" },
  "items": [
    { "metadata": { "name": "default", "uid": "u1", "resourceVersion": "10",
        "labels": { "kubernetes.io/metadata.name": "default" } },
      "spec": { "finalizers": [ "kubernetes" ] }, "status": { "phase": "Active" } },
    { "metadata": { "name": "grpcdemo", "uid": "u2", "resourceVersion": "6990",
        "labels": { "kubernetes.io/metadata.name": "grpcdemo", "h2mesh-injection": "enabled",
                    "odd": 3 } },
      "status": { "phase": "Active" } },
    { "metadata": { "name": "bare" } }
  ]
})";

TEST(K8sNamespaces, ListGivesNamesLabelsAndPaging) {
  auto list = parse_namespace_list(kList);
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_EQ(list->resource_version, "7001");
  EXPECT_EQ(list->continue_token, "next-page");
  ASSERT_EQ(list->items.size(), 3u);
  EXPECT_EQ(list->items[0].name, "default");
  EXPECT_EQ(list->items[1].name, "grpcdemo");
  EXPECT_EQ(list->items[1].labels.at("h2mesh-injection"), "enabled");
  EXPECT_EQ(list->items[1].labels.count("odd"), 0u) << "a label value that is not a string";
  EXPECT_TRUE(list->items[2].labels.empty());
}

TEST(K8sNamespaces, ModifiedEventCarriesTheNewLabels) {
  auto ev = parse_namespace_event(
      R"({"type":"MODIFIED","object":{"kind":"Namespace","apiVersion":"v1","metadata":)"
      R"({"name":"shop","resourceVersion":"7005","labels":{"h2mesh-injection":"disabled"}}}})");
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  EXPECT_EQ(ev->type, WatchEventType::Modified);
  EXPECT_EQ(ev->resource_version, "7005");
  EXPECT_EQ(ev->namespace_.name, "shop");
  EXPECT_EQ(ev->namespace_.labels.at("h2mesh-injection"), "disabled");
}

TEST(K8sNamespaces, NamespaceWithoutNameIsAnError) {
  auto list =
      parse_namespace_list(R"({"metadata":{"resourceVersion":"1"},"items":[{"metadata":{}}]})");
  ASSERT_FALSE(list.ok());
  EXPECT_NE(list.error().message.find("metadata.name"), std::string::npos);
  EXPECT_FALSE(parse_namespace_event(R"({"type":"ADDED","object":{"kind":"Namespace"}})").ok());
}

}  // namespace
}  // namespace h2mesh::discovery::k8s
