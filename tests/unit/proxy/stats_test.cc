// retire_endpoints: the per-worker entry of an endpoint that left goes once nothing uses it and
// the retention has passed, and the cluster's totals over its endpoints never go backwards.

#include "proxy/stats.h"

#include <gtest/gtest.h>

#include <string_view>
#include <utility>
#include <vector>

namespace h2mesh::proxy {
namespace {

using std::chrono::milliseconds;

// An endpoint that has served calls and left the snapshot, with nothing open any more.
EndpointStats departed_endpoint(uint64_t calls) {
  EndpointStats e;
  e.calls.calls_total = calls;
  e.calls.by_status[0] = calls - 1;
  e.calls.by_status[14] = 1;
  e.upstream_connections_total = 2;
  e.connect_failures = 3;
  e.upstream_resets = 4;
  e.in_snapshot = false;
  return e;
}

TEST(RetireEndpoints, DepartedEntryStaysForTheRetentionThenGoesIntoTheTotals) {
  ClusterStats c;
  c.endpoints["10.0.0.1:50051"] = departed_endpoint(10);
  c.endpoints["10.0.0.2:50051"].users = 1;  // in the snapshot: its pool uses it
  const EndpointStats before = endpoint_totals(c);
  const TimePoint t0{};

  EXPECT_TRUE(retire_endpoints(c, t0, milliseconds(100)));
  EXPECT_TRUE(retire_endpoints(c, t0 + milliseconds(99), milliseconds(100)));
  EXPECT_EQ(c.endpoints.count("10.0.0.1:50051"), 1u) << "a scrape must still see it";

  EXPECT_FALSE(retire_endpoints(c, t0 + milliseconds(100), milliseconds(100)));
  EXPECT_EQ(c.endpoints.count("10.0.0.1:50051"), 0u);
  EXPECT_EQ(c.endpoints.count("10.0.0.2:50051"), 1u) << "an endpoint in the snapshot stays";
  const EndpointStats after = endpoint_totals(c);
  EXPECT_EQ(after.calls.calls_total, before.calls.calls_total);
  EXPECT_EQ(after.calls.by_status, before.calls.by_status);
  EXPECT_EQ(after.upstream_connections_total, 2u);
  EXPECT_EQ(after.connect_failures, 3u);
  EXPECT_EQ(after.upstream_resets, 4u);
}

TEST(RetireEndpoints, EntryInUseByACallOrADrainingPoolIsKept) {
  ClusterStats c;
  EndpointStats& e = c.endpoints["10.0.0.1:50051"] = departed_endpoint(5);
  e.users = 1;  // a call still counts its final status into it
  const TimePoint t0{};
  EXPECT_TRUE(retire_endpoints(c, t0, milliseconds(0)));
  EXPECT_TRUE(retire_endpoints(c, t0 + std::chrono::hours(1), milliseconds(0)));
  EXPECT_EQ(c.endpoints.size(), 1u);
  // The retention counts from the moment it is first found unused, not from its departure.
  e.users = 0;
  const TimePoint t1 = t0 + std::chrono::hours(2);
  EXPECT_TRUE(retire_endpoints(c, t1, milliseconds(50)));
  EXPECT_TRUE(retire_endpoints(c, t1 + milliseconds(49), milliseconds(50)));
  EXPECT_FALSE(retire_endpoints(c, t1 + milliseconds(50), milliseconds(50)));
  EXPECT_TRUE(c.endpoints.empty());
}

TEST(RetireEndpoints, EndpointThatComesBackBeforeItsEntryGoesKeepsIt) {
  ClusterStats c;
  EndpointStats& e = c.endpoints["10.0.0.1:50051"] = departed_endpoint(5);
  const TimePoint t0{};
  EXPECT_TRUE(retire_endpoints(c, t0, milliseconds(100)));
  e.in_snapshot = true;  // a new pool took it again
  e.users = 1;
  EXPECT_FALSE(retire_endpoints(c, t0 + milliseconds(200), milliseconds(100)));
  ASSERT_EQ(c.endpoints.size(), 1u);
  EXPECT_EQ(c.endpoints.begin()->second.calls.calls_total, 5u) << "its counters continue";
  EXPECT_FALSE(e.unused_since.has_value());
}

TEST(RetireEndpoints, WorkersTotalsAddUpWithTheirDepartedCounts) {
  WorkerStats a, b;
  a.clusters["greeter"].endpoints["10.0.0.1:50051"] = departed_endpoint(7);
  b.clusters["greeter"].endpoints["10.0.0.1:50051"] = departed_endpoint(3);
  retire_endpoints(a.clusters["greeter"], TimePoint{}, milliseconds(0));  // gone on one worker only
  WorkerStats sum;
  sum.add(a);
  sum.add(b);
  EXPECT_EQ(endpoint_totals(sum.clusters["greeter"]).calls.calls_total, 10u);
  EXPECT_EQ(sum.clusters["greeter"].endpoints.size(), 1u);
}

TEST(InboundCalls, AtMostAHundredIdentitiesThenOtherAlsoWhenWorkersAreAdded) {
  MeshStats a, b;
  for (int i = 0; i < 100; ++i) a.count_inbound_call("spiffe://cluster.local/ns/a/sa/" + std::to_string(i));
  a.count_inbound_call("spiffe://cluster.local/ns/a/sa/0");
  a.count_inbound_call("spiffe://cluster.local/ns/a/sa/late");  // the 101st identity
  EXPECT_EQ(a.inbound_calls.size(), 101u);
  EXPECT_EQ(a.inbound_calls["spiffe://cluster.local/ns/a/sa/0"], 2u);
  EXPECT_EQ(a.inbound_calls["other"], 1u);
  EXPECT_EQ(a.inbound_calls.count("spiffe://cluster.local/ns/a/sa/late"), 0u);
  // Another worker saw other identities: the sum stays bounded too, calls are never lost.
  for (int i = 0; i < 5; ++i) b.count_inbound_call("spiffe://cluster.local/ns/b/sa/" + std::to_string(i));
  b.count_inbound_call("spiffe://cluster.local/ns/a/sa/1");
  MeshStats sum;
  sum.add(a);
  sum.add(b);
  EXPECT_EQ(sum.inbound_calls.size(), 101u);
  EXPECT_EQ(sum.inbound_calls["other"], 6u);
  EXPECT_EQ(sum.inbound_calls["spiffe://cluster.local/ns/a/sa/1"], 2u);
  uint64_t total = 0;
  for (const auto& [id, n] : sum.inbound_calls) total += n;
  EXPECT_EQ(total, 108u);
}

// The counter tables: add() sums every row, and an endpoint that departs folds every counter
// row into the cluster's totals.
TEST(StatsTables, AddSumsEveryTableCounterAndTheListeners) {
  WorkerStats a, b;
  uint64_t next = 0;
  std::vector<std::pair<uint64_t*, uint64_t>> sums;  // a's member, expected after a.add(b)
#define H2MESH_SET(target_a, target_b, member)   \
  target_a.member = ++next;                      \
  target_b.member = 1000 * next;                 \
  sums.emplace_back(&target_a.member, 1001 * next);
#define H2MESH_ROW(member, name, label, type, help) H2MESH_SET(a, b, member)
  H2MESH_WORKER_COUNTERS(H2MESH_ROW)
#undef H2MESH_ROW
#define H2MESH_ROW(member, name, label, type, help) H2MESH_SET(a.mesh, b.mesh, member)
  H2MESH_MESH_COUNTERS(H2MESH_ROW)
#undef H2MESH_ROW
  ClusterStats& ca = a.clusters["greeter"];
  ClusterStats& cb = b.clusters["greeter"];
#define H2MESH_ROW(member, name, label, type, help) H2MESH_SET(ca, cb, member)
  H2MESH_CLUSTER_COUNTERS(H2MESH_ROW)
#undef H2MESH_ROW
  EndpointStats& ea = ca.endpoints["10.0.0.1:50051"];
  EndpointStats& eb = cb.endpoints["10.0.0.1:50051"];
#define H2MESH_ROW(member, name, cluster_name, type, help, cluster_help) H2MESH_SET(ea, eb, member)
  H2MESH_ENDPOINT_COUNTERS(H2MESH_ROW)
#undef H2MESH_ROW
#undef H2MESH_SET
  a.listeners["grpc"].calls_total = 2;
  a.listeners["grpc"].by_status[0] = 2;
  a.listeners["grpc"].duration.record(100);
  b.listeners["grpc"].calls_total = 1;
  b.listeners["grpc"].by_status[14] = 1;
  b.listeners["grpc"].duration.record(5000);
  b.listeners["admin"].calls_total = 1;

  a.add(b);
  for (const auto& [member, expected] : sums) EXPECT_EQ(*member, expected);
  EXPECT_EQ(a.listeners["grpc"].calls_total, 3u);
  EXPECT_EQ(a.listeners["grpc"].by_status[0], 2u);
  EXPECT_EQ(a.listeners["grpc"].by_status[14], 1u);
  EXPECT_EQ(a.listeners["grpc"].duration.count(), 2u);
  EXPECT_EQ(a.listeners["grpc"].duration.sum(), 5100u);
  EXPECT_EQ(a.listeners["admin"].calls_total, 1u);
}

TEST(StatsTables, ADepartedEndpointFoldsEveryCounterRowIntoTheClusterTotals) {
  ClusterStats c;
  EndpointStats& e = c.endpoints["10.0.0.1:50051"] = departed_endpoint(3);
  uint64_t next = 100;
  std::vector<std::pair<uint64_t EndpointStats::*, uint64_t>> counters;
#define H2MESH_ROW(member, name, cluster_name, type, help, cluster_help) \
  if (std::string_view(#type) == "counter") {                          \
    e.member = ++next;                                                 \
    counters.emplace_back(&EndpointStats::member, next);               \
  }
  H2MESH_ENDPOINT_COUNTERS(H2MESH_ROW)
#undef H2MESH_ROW
  ASSERT_FALSE(counters.empty());
  EXPECT_FALSE(retire_endpoints(c, TimePoint{}, milliseconds(0)));
  ASSERT_TRUE(c.endpoints.empty());
  const EndpointStats totals = endpoint_totals(c);
  for (const auto& [member, value] : counters) EXPECT_EQ(totals.*member, value);
}

}  // namespace
}  // namespace h2mesh::proxy
