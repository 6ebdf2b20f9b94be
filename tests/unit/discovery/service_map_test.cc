// The Service map built from Services and EndpointSlices (parsed from the API's JSON, as the
// watcher gets them): which Service ports are in it, how a Service port finds its pods' port
// through the slices, who gets calls, dual stack, and that a new map reuses every entry that did
// not change.

#include "discovery/service_map.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <vector>

namespace h2mesh::discovery {
namespace {

k8s::Service service(const std::string& ns, const std::string& name, const std::string& spec) {
  auto ev = k8s::parse_service_event(R"({"type":"ADDED","object":{"kind":"Service","metadata":{)"
                                     R"("name":")" +
                                     name + R"(","namespace":")" + ns +
                                     R"(","resourceVersion":"1"},"spec":)" + spec + "}}");
  EXPECT_TRUE(ev.ok()) << ev.error().message;
  return ev.ok() ? ev->service : k8s::Service{};
}

// A ClusterIP Service with one named TCP port.
k8s::Service grpc_service(const std::string& ns, const std::string& name, const std::string& ip,
                          int port = 50051) {
  return service(ns, name,
                 R"({"clusterIP":")" + ip + R"(","clusterIPs":[")" + ip +
                     R"("],"ports":[{"name":"grpc","protocol":"TCP","port":)" +
                     std::to_string(port) + R"(,"targetPort":"grpc"}]})");
}

std::string ep(const std::string& ip, bool ready = true, bool terminating = false) {
  return R"({"addresses":[")" + ip + R"("],"conditions":{"ready":)" + (ready ? "true" : "false") +
         R"(,"serving":true,"terminating":)" + (terminating ? "true" : "false") + "}}";
}

k8s::EndpointSlice slice(const std::string& ns, const std::string& name,
                         const std::string& service_label, const std::vector<std::string>& eps,
                         const std::string& ports = R"([{"name":"grpc","port":8080}])",
                         const std::string& type = "IPv4") {
  std::string list;
  for (const auto& e : eps) list += (list.empty() ? "" : ",") + e;
  std::string labels =
      service_label.empty() ? "{}" : R"({"kubernetes.io/service-name":")" + service_label + R"("})";
  auto ev = k8s::parse_watch_event(
      R"({"type":"ADDED","object":{"kind":"EndpointSlice","metadata":{"name":")" + name +
      R"(","namespace":")" + ns + R"(","resourceVersion":"2","labels":)" + labels +
      R"(},"addressType":")" + type + R"(","endpoints":[)" + list + R"(],"ports":)" + ports + "}}");
  EXPECT_TRUE(ev.ok()) << ev.error().message;
  return ev.ok() ? ev->slice : k8s::EndpointSlice{};
}

k8s::ServiceEvent service_event(k8s::WatchEventType type, k8s::Service s) {
  k8s::ServiceEvent ev;
  ev.type = type;
  ev.service = std::move(s);
  return ev;
}

k8s::WatchEvent slice_event(k8s::WatchEventType type, k8s::EndpointSlice s) {
  k8s::WatchEvent ev;
  ev.type = type;
  ev.slice = std::move(s);
  return ev;
}

// "address ready|notready [terminating]" per endpoint.
std::vector<std::string> describe(const MeshService& s) {
  std::vector<std::string> out;
  for (const auto& e : s.endpoints)
    out.push_back(e.address.to_string() + (e.ready ? " ready" : " notready") +
                  (e.terminating ? " terminating" : ""));
  return out;
}

// The entry for "10.96.0.1:80" or "[fd00::1]:80".
const MeshService* find(const ServiceMap& map, const std::string& address) {
  size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  return map.find(
      config::SocketAddress{host, static_cast<uint16_t>(std::stoi(address.substr(colon + 1)))});
}

TEST(ServiceMap, ServicePortFindsItsTargetPortByNameInEachSlice) {
  ServiceMapBuilder b;
  // targetPort "grpc" is a name: two Deployments behind one Service listen on different ports,
  // and each slice says which. The metrics port is another entry on the same cluster IP.
  b.replace_services("", {service("grpcdemo", "greeter",
                                  R"({"clusterIP":"10.96.0.15","ports":[)"
                                  R"({"name":"grpc","port":50051,"targetPort":"grpc"},)"
                                  R"({"name":"metrics","port":9090,"targetPort":9100}]})")});
  b.replace_slices("", {slice("grpcdemo", "greeter-a", "greeter", {ep("10.244.1.10")},
                              R"([{"name":"metrics","port":9100},{"name":"grpc","port":8080}])"),
                        slice("grpcdemo", "greeter-b", "greeter", {ep("10.244.2.20")},
                              R"([{"name":"grpc","port":9090},{"name":"metrics","port":9100}])")});
  auto map = b.build();
  ASSERT_TRUE(map);
  ASSERT_EQ(map->services.size(), 2u);
  const MeshService* grpc = find(*map, "10.96.0.15:50051");
  ASSERT_TRUE(grpc);
  EXPECT_EQ(grpc->namespace_, "grpcdemo");
  EXPECT_EQ(grpc->service, "greeter");
  EXPECT_EQ(grpc->port_name, "grpc");
  EXPECT_EQ(grpc->port, 50051);
  EXPECT_EQ(describe(*grpc),
            (std::vector<std::string>{"10.244.1.10:8080 ready", "10.244.2.20:9090 ready"}));
  const MeshService* metrics = find(*map, "10.96.0.15:9090");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(describe(*metrics),
            (std::vector<std::string>{"10.244.1.10:9100 ready", "10.244.2.20:9100 ready"}));
  EXPECT_EQ(find(*map, "10.96.0.15:1"), nullptr);
  // A worker looks up an intercepted connection's original destination as a socket address.
  sockaddr_in original{};
  original.sin_family = AF_INET;
  original.sin_port = htons(9090);
  inet_pton(AF_INET, "10.96.0.15", &original.sin_addr);
  EXPECT_EQ(map->find(reinterpret_cast<const sockaddr*>(&original)), metrics);
}

TEST(ServiceMap, UnnamedSinglePortMatchesTheSlicesUnnamedPort) {
  ServiceMapBuilder b;
  b.replace_services("", {service("n", "web",
                                  R"({"clusterIP":"10.96.0.2","ports":[{"port":80,)"
                                  R"("targetPort":8080,"appProtocol":"http"}]})")});
  b.replace_slices("", {slice("n", "web-x", "web", {ep("10.1.0.1")}, R"([{"port":8080}])")});
  auto map = b.build();
  ASSERT_TRUE(map);
  const MeshService* web = find(*map, "10.96.0.2:80");
  ASSERT_TRUE(web);
  EXPECT_EQ(web->port_name, "");
  EXPECT_EQ(web->app_protocol, "http");
  EXPECT_EQ(describe(*web), std::vector<std::string>{"10.1.0.1:8080 ready"});
}

TEST(ServiceMap, SliceWithoutThePortNameGivesNoEndpointsToThatPort) {
  ServiceMapBuilder b;
  b.replace_services("", {grpc_service("n", "a", "10.96.0.3")});
  // During a rename of the Service port, a slice may still carry the old name.
  b.replace_slices("", {slice("n", "a-1", "a", {ep("10.1.0.1")}, R"([{"name":"old","port":1}])"),
                        slice("n", "a-2", "a", {ep("10.1.0.2")})});
  auto map = b.build();
  ASSERT_TRUE(map);
  EXPECT_EQ(describe(*find(*map, "10.96.0.3:50051")),
            std::vector<std::string>{"10.1.0.2:8080 ready"});
}

TEST(ServiceMap, OnlyReadyEndpointsGetCallsUnlessNoneIsReady) {
  ServiceMapBuilder b;
  b.replace_services("", {grpc_service("n", "a", "10.96.0.4")});
  b.replace_slices("",
                   {slice("n", "a-1", "a",
                          {ep("10.1.0.1"), ep("10.1.0.2", false), ep("10.1.0.3", false, true)})});
  auto map = b.build();
  ASSERT_TRUE(map);
  EXPECT_EQ(describe(*find(*map, "10.96.0.4:50051")),
            (std::vector<std::string>{"10.1.0.1:8080 ready", "10.1.0.2:8080 notready",
                                      "10.1.0.3:8080 notready terminating"}));

  // Scale-down: the last ready pod is terminating too. The ones still serving take the calls
  // rather than every call failing with "no endpoint".
  b.apply(slice_event(
      k8s::WatchEventType::Modified,
      slice("n", "a-1", "a",
            {ep("10.1.0.1", false, true), ep("10.1.0.2", false), ep("10.1.0.3", false, true)})));
  map = b.build();
  ASSERT_TRUE(map);
  EXPECT_EQ(describe(*find(*map, "10.96.0.4:50051")),
            (std::vector<std::string>{"10.1.0.1:8080 ready terminating", "10.1.0.2:8080 notready",
                                      "10.1.0.3:8080 ready terminating"}));
}

TEST(ServiceMap, HeadlessExternalNameAndNonTcpPortsAreNotInTheMap) {
  ServiceMapBuilder b;
  b.replace_services(
      "", {service("n", "headless", R"({"clusterIP":"None","ports":[{"name":"grpc","port":1}]})"),
           service("n", "ext",
                   R"({"type":"ExternalName","externalName":"x.example.com",)"
                   R"("ports":[{"name":"grpc","port":1}]})"),
           service("n", "dns",
                   R"({"clusterIP":"10.96.0.10","ports":[)"
                   R"({"name":"dns","protocol":"UDP","port":53},)"
                   R"({"name":"dns-tcp","protocol":"TCP","port":53},)"
                   R"({"name":"sctp","protocol":"SCTP","port":99}]})"),
           service("n", "pending", R"({"clusterIP":"","ports":[{"name":"grpc","port":1}]})")});
  b.replace_slices(
      "", {slice("n", "headless-1", "headless", {ep("10.1.0.1")}, R"([{"name":"grpc","port":1}])"),
           slice("n", "dns-1", "dns", {ep("10.1.0.53")},
                 R"([{"name":"dns","protocol":"UDP","port":53},)"
                 R"({"name":"dns-tcp","protocol":"TCP","port":53}])")});
  auto map = b.build();
  ASSERT_TRUE(map);
  ASSERT_EQ(map->services.size(), 1u);
  EXPECT_EQ(map->services[0]->service, "dns");
  EXPECT_EQ(map->services[0]->port_name, "dns-tcp");
  EXPECT_EQ(map->by_address.size(), 1u);
  EXPECT_EQ(describe(*find(*map, "10.96.0.10:53")), std::vector<std::string>{"10.1.0.53:53 ready"});
}

// Found by fuzz_service_map: the API server never sends one TCP port twice, but the map must
// not hold two entries for one Service port if it did.
TEST(ServiceMap, SamePortTwiceIsOneEntry) {
  ServiceMapBuilder b;
  b.replace_services("", {service("n", "dns",
                                  R"({"clusterIP":"10.96.0.10","ports":[)"
                                  R"({"name":"dns","port":53},)"
                                  R"({"name":"dns-tcp","protocol":"TCP","port":53}]})")});
  auto map = b.build();
  ASSERT_TRUE(map);
  ASSERT_EQ(map->services.size(), 1u);
  EXPECT_EQ(map->services[0]->port_name, "dns");
}

TEST(ServiceMap, DualStackServiceHasBothClusterIpsAndBothFamiliesOfEndpoints) {
  ServiceMapBuilder b;
  b.replace_services("", {service("n", "a",
                                  R"({"clusterIP":"10.96.0.5",)"
                                  R"("clusterIPs":["10.96.0.5","fd00:10:96::5"],)"
                                  R"("ports":[{"name":"grpc","port":50051}]})")});
  b.replace_slices("", {slice("n", "a-v4", "a", {ep("10.1.0.1")}),
                        slice("n", "a-v6", "a", {ep("fd00:10:244::1")},
                              R"([{"name":"grpc","port":8080}])", "IPv6"),
                        slice("n", "a-fqdn", "a", {ep("pod.example.com")},
                              R"([{"name":"grpc","port":8080}])", "FQDN")});
  auto map = b.build();
  ASSERT_TRUE(map);
  ASSERT_EQ(map->services.size(), 1u);
  const MeshService* v4 = find(*map, "10.96.0.5:50051");
  const MeshService* v6 = find(*map, "[fd00:10:96::5]:50051");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4, v6);
  // The IPv6 original destination of a dual-stack socket, and an IPv4 one seen through it.
  sockaddr_in6 original{};
  original.sin6_family = AF_INET6;
  original.sin6_port = htons(50051);
  inet_pton(AF_INET6, "fd00:10:96:0::5", &original.sin6_addr);
  EXPECT_EQ(map->find(reinterpret_cast<const sockaddr*>(&original)), v4);
  inet_pton(AF_INET6, "::ffff:10.96.0.5", &original.sin6_addr);
  EXPECT_EQ(map->find(reinterpret_cast<const sockaddr*>(&original)), v4);
  EXPECT_EQ(v4->cluster_ips.size(), 2u);
  EXPECT_EQ(describe(*v4),
            (std::vector<std::string>{"10.1.0.1:8080 ready", "[fd00:10:244::1]:8080 ready"}));
}

TEST(ServiceMap, EntriesThatDidNotChangeAreTheSameObjects) {
  ServiceMapBuilder b;
  b.replace_services("",
                     {grpc_service("n", "a", "10.96.0.6"), grpc_service("n", "b", "10.96.0.7")});
  b.replace_slices(
      "", {slice("n", "a-1", "a", {ep("10.1.0.1")}), slice("n", "b-1", "b", {ep("10.2.0.1")})});
  auto first = b.build();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->version, 1u);

  // Nothing changed: no new map.
  EXPECT_EQ(b.build(), nullptr);

  // A pod of b joins: b's entry is new, a's is the very same object.
  b.apply(slice_event(k8s::WatchEventType::Modified,
                      slice("n", "b-1", "b", {ep("10.2.0.1"), ep("10.2.0.2")})));
  auto second = b.build();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->version, 2u);
  EXPECT_EQ(find(*second, "10.96.0.6:50051"), find(*first, "10.96.0.6:50051"));
  EXPECT_NE(find(*second, "10.96.0.7:50051"), find(*first, "10.96.0.7:50051"));
  EXPECT_EQ(find(*second, "10.96.0.7:50051")->endpoints.size(), 2u);

  // A relist that brings the same objects (after a 410) changes nothing either.
  b.replace_services("",
                     {grpc_service("n", "a", "10.96.0.6"), grpc_service("n", "b", "10.96.0.7")});
  b.replace_slices("", {slice("n", "a-1", "a", {ep("10.1.0.1")}),
                        slice("n", "b-1", "b", {ep("10.2.0.1"), ep("10.2.0.2")})});
  EXPECT_EQ(b.build(), nullptr);
  // ... unless a map is asked for anyway: the same entries.
  auto third = b.build(/*always=*/true);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->services, second->services);

  // A change to the Service alone (another cluster IP port) is a new entry too.
  b.apply(service_event(k8s::WatchEventType::Modified, grpc_service("n", "a", "10.96.0.6", 7000)));
  auto fourth = b.build();
  ASSERT_TRUE(fourth);
  EXPECT_EQ(find(*fourth, "10.96.0.6:50051"), nullptr);
  ASSERT_TRUE(find(*fourth, "10.96.0.6:7000"));
  EXPECT_EQ(find(*fourth, "10.96.0.7:50051"), find(*second, "10.96.0.7:50051"));
}

TEST(ServiceMap, ServicesAndSlicesComeAndGoInAnyOrder) {
  ServiceMapBuilder b;
  b.replace_services("", {});
  b.replace_slices("", {});
  auto empty = b.build(/*always=*/true);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->services.empty());

  // The slice is watched before its Service: nothing to dial yet.
  b.apply(slice_event(k8s::WatchEventType::Added, slice("n", "a-1", "a", {ep("10.1.0.1")})));
  EXPECT_EQ(b.build(), nullptr);
  b.apply(service_event(k8s::WatchEventType::Added, grpc_service("n", "a", "10.96.0.8")));
  auto map = b.build();
  ASSERT_TRUE(map);
  EXPECT_EQ(describe(*find(*map, "10.96.0.8:50051")),
            std::vector<std::string>{"10.1.0.1:8080 ready"});

  // The slice goes: the Service stays, with no endpoint.
  b.apply(slice_event(k8s::WatchEventType::Deleted, slice("n", "a-1", "a", {})));
  map = b.build();
  ASSERT_TRUE(map);
  EXPECT_TRUE(find(*map, "10.96.0.8:50051")->endpoints.empty());
  EXPECT_EQ(b.slice_count(), 0u);

  // A slice whose label moves to another Service leaves the first one.
  b.apply(service_event(k8s::WatchEventType::Added, grpc_service("n", "b", "10.96.0.9")));
  b.apply(slice_event(k8s::WatchEventType::Added, slice("n", "x", "a", {ep("10.1.0.2")})));
  b.apply(slice_event(k8s::WatchEventType::Modified, slice("n", "x", "b", {ep("10.1.0.2")})));
  map = b.build();
  ASSERT_TRUE(map);
  EXPECT_TRUE(find(*map, "10.96.0.8:50051")->endpoints.empty());
  EXPECT_EQ(find(*map, "10.96.0.9:50051")->endpoints.size(), 1u);

  // A slice nobody labelled is not any Service's.
  b.apply(slice_event(k8s::WatchEventType::Added, slice("n", "manual", "", {ep("10.1.0.3")})));
  EXPECT_EQ(b.build(), nullptr);

  // The Service goes: its addresses leave the map.
  b.apply(service_event(k8s::WatchEventType::Deleted, grpc_service("n", "a", "10.96.0.8")));
  map = b.build();
  ASSERT_TRUE(map);
  EXPECT_EQ(find(*map, "10.96.0.8:50051"), nullptr);
  EXPECT_EQ(map->services.size(), 1u);
}

TEST(ServiceMap, ListOfOneNamespaceReplacesOnlyThatNamespace) {
  ServiceMapBuilder b;
  b.replace_services("a", {grpc_service("a", "x", "10.96.1.1")});
  b.replace_services("b", {grpc_service("b", "x", "10.96.2.1")});
  b.replace_slices("a", {slice("a", "x-1", "x", {ep("10.1.1.1")})});
  b.replace_slices("b", {slice("b", "x-1", "x", {ep("10.1.2.1")})});
  auto first = b.build();
  ASSERT_TRUE(first);
  ASSERT_EQ(first->services.size(), 2u);

  // Namespace a is listed again (its watch got a 410): x left it meanwhile; b is untouched.
  b.replace_services("a", {});
  b.replace_slices("a", {});
  auto second = b.build();
  ASSERT_TRUE(second);
  ASSERT_EQ(second->services.size(), 1u);
  EXPECT_EQ(second->services[0], first->services[1]);
  EXPECT_EQ(b.slice_count(), 1u);
}

TEST(ServiceMap, CountsFollowListsAndEvents) {
  ServiceMapBuilder b;
  b.replace_services(
      "a", {grpc_service("a", "x", "10.96.1.1"), service("a", "h", R"({"clusterIP":"None"})")});
  b.replace_services("b", {grpc_service("b", "x", "10.96.2.1")});
  b.replace_slices(
      "", {slice("a", "x-1", "x", {ep("10.1.1.1")}), slice("a", "h-1", "h", {ep("10.1.1.2")}),
           slice("a", "m-1", "", {ep("10.1.1.3")})});  // nobody's: not kept
  EXPECT_EQ(b.service_count(), 3u);                    // the headless one counts: it is watched
  EXPECT_EQ(b.slice_count(), 2u);
  b.apply(service_event(k8s::WatchEventType::Added, grpc_service("b", "y", "10.96.2.2")));
  b.apply(service_event(k8s::WatchEventType::Modified, grpc_service("b", "y", "10.96.2.2", 1)));
  b.apply(service_event(k8s::WatchEventType::Deleted, grpc_service("a", "x", "10.96.1.1")));
  EXPECT_EQ(b.service_count(), 3u);
  b.replace_services("a", {});
  EXPECT_EQ(b.service_count(), 2u);
  auto map = b.build();
  ASSERT_TRUE(map);
  EXPECT_EQ(map->services.size(), 2u);
  // A pod name is not kept: nothing downstream reads it.
  b.apply(slice_event(
      k8s::WatchEventType::Added,
      slice("b", "y-1", "y", {R"({"addresses":["10.2.2.2"],"targetRef":{"name":"pod-7"}})"})));
  map = b.build();
  ASSERT_TRUE(map);
  const MeshService* y = find(*map, "10.96.2.2:1");
  ASSERT_TRUE(y);
  ASSERT_EQ(y->endpoints.size(), 1u);
  EXPECT_EQ(y->endpoints[0].address.to_string(), "10.2.2.2:8080");
  EXPECT_EQ(y->endpoints[0].name, "");
}

TEST(ServiceMap, EntriesAreSortedByNamespaceNameAndPort) {
  ServiceMapBuilder b;
  // "a-b/..." sorts before "a/..." as text; by namespace, "a" comes first.
  b.replace_services("",
                     {grpc_service("a-b", "z", "10.96.0.1"), grpc_service("a", "z", "10.96.0.2"),
                      service("a", "y",
                              R"({"clusterIP":"10.96.0.3","ports":[)"
                              R"({"name":"b","port":9000},{"name":"a","port":80}]})")});
  auto map = b.build();
  ASSERT_TRUE(map);
  std::vector<std::string> order;
  for (const auto& s : map->services)
    order.push_back(s->namespace_ + " " + s->service + " " + std::to_string(s->port));
  EXPECT_EQ(order, (std::vector<std::string>{"a y 80", "a y 9000", "a z 50051", "a-b z 50051"}));
}

}  // namespace
}  // namespace h2mesh::discovery
