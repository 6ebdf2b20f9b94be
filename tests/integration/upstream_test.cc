// Upstream connection pools against real backends: stream limits, queueing, GOAWAY.

#include <gtest/gtest.h>

#include <regex>

#include "harness.h"

namespace h2mesh_test {
namespace {

uint64_t endpoint_metric(uint16_t admin_port, const std::string& name, const std::string& endpoint) {
  auto [code, metrics] = http_get(admin_port, "/metrics");
  std::regex re(name + "\\{cluster=\"greeter\",endpoint=\"" + endpoint + "\"\\} (\\d+)");
  std::smatch m;
  if (code != 200 || !std::regex_search(metrics, m, re)) return UINT64_MAX;
  return std::stoull(m[1]);
}

TEST_F(ProxyTest, FullConnectionMakesThePoolOpenAnother) {
  backends_.push_back(start_backend(dir_, "greeter-1", 0, {"--max-concurrent-streams", "2"}));
  start(simple_config(endpoints(), "round_robin", 1, "    max_connections_per_endpoint: 8\n"));
  auto s = stub();
  SlowCalls slow(*s, 8, 3000, 20000);
  // All 8 run at the backend at the same time: 4 connections of 2 streams each.
  ASSERT_TRUE(eventually([&] { return backend_stats(backends_[0]).calls() == 8; },
                         std::chrono::seconds(10)));
  EXPECT_EQ(endpoint_metric(proxy_.admin_port, "h2mesh_endpoint_upstream_connections_active",
                            backends_[0].address()),
            4u);
  ASSERT_TRUE(slow.wait(std::chrono::seconds(20)));
  for (size_t i = 0; i < slow.size(); ++i) EXPECT_TRUE(slow.status(i).ok());
}

TEST_F(ProxyTest, CallsWaitForAFreeStreamWhenConnectionsAreCapped) {
  backends_.push_back(start_backend(dir_, "greeter-1", 0, {"--max-concurrent-streams", "2"}));
  start(simple_config(endpoints(), "round_robin", 1, "    max_connections_per_endpoint: 1\n"));
  auto s = stub();
  SlowCalls slow(*s, 6, 500, 20000);
  ASSERT_TRUE(slow.wait(std::chrono::seconds(20)));
  auto slowest = std::chrono::steady_clock::duration::zero();
  for (size_t i = 0; i < slow.size(); ++i) {
    EXPECT_TRUE(slow.status(i).ok()) << slow.status(i).error_message();
    slowest = std::max(slowest, slow.took(i));
  }
  // Three rounds of two: the last pair could only start after two others finished.
  EXPECT_GE(slowest, std::chrono::milliseconds(1400));
  EXPECT_EQ(endpoint_metric(proxy_.admin_port, "h2mesh_endpoint_upstream_connections_total",
                            backends_[0].address()),
            1u);
}

TEST_F(ProxyTest, PendingQueueOverflowFailsAtOnce) {
  backends_.push_back(start_backend(dir_, "greeter-1", 0, {"--max-concurrent-streams", "1"}));
  start(simple_config(endpoints(), "round_robin", 1,
                      "    max_connections_per_endpoint: 1\n    max_pending_calls: 1\n"));
  auto s = stub();
  {
    grpc::ClientContext warm;
    helloworld::HelloRequest req;
    helloworld::HelloReply reply;
    ASSERT_TRUE(s->SayHello(&warm, req, &reply).ok());  // the upstream connection is up
  }
  SlowCalls slow(*s, 2, 2000, 20000);  // one running, one waiting
  ASSERT_TRUE(eventually([&] { return backend_stats(backends_[0]).calls() == 2; },
                         std::chrono::seconds(10)));
  grpc::ClientContext ctx;
  helloworld::HelloRequest req;
  helloworld::HelloReply reply;
  auto t0 = std::chrono::steady_clock::now();
  auto st = s->SayHello(&ctx, req, &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("max_pending_calls"), std::string::npos) << st.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
  ASSERT_TRUE(slow.wait(std::chrono::seconds(20)));
  EXPECT_TRUE(slow.status(0).ok()) << slow.status(0).error_message();
  EXPECT_TRUE(slow.status(1).ok()) << slow.status(1).error_message();
}

TEST_F(ProxyTest, BackendGoawayDrainsWithoutFailingAcceptedCalls) {
  start_backends(2);
  start(simple_config(endpoints(), "round_robin"));
  auto s = stub();
  SlowCalls slow(*s, 4, 1500, 20000);
  ASSERT_TRUE(eventually([&] { return total_calls(backends_) == 4; }, std::chrono::seconds(10)));
  // A graceful backend shutdown: GOAWAY, then it lets the calls it accepted finish.
  backends_[0].process->send_signal(SIGTERM);
  ASSERT_TRUE(slow.wait(std::chrono::seconds(20)));
  for (size_t i = 0; i < slow.size(); ++i)
    EXPECT_TRUE(slow.status(i).ok()) << slow.status(i).error_message();
  int failed = 0;
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    helloworld::HelloRequest req;
    helloworld::HelloReply reply;
    auto st = s->SayHello(&ctx, req, &reply);
    if (!st.ok()) {
      EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
      ++failed;
    } else {
      EXPECT_EQ(backend_of(reply.message()), backends_[1].id);
    }
  }
  EXPECT_LE(failed, 1) << "only the call that finds the backend's port closed";
}

}  // namespace
}  // namespace h2mesh_test
