// Live configuration reload against real processes: SIGHUP and file changes, valid and invalid.

#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "harness.h"

namespace h2mesh_test {
namespace {

std::string answer_of(helloworld::Greeter::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  helloworld::HelloRequest req;
  helloworld::HelloReply reply;
  auto st = stub.SayHello(&ctx, req, &reply);
  return st.ok() ? backend_of(reply.message()) : "error: " + st.error_message();
}

size_t count_lines(Subprocess& p, const std::string& needle) {
  std::string err = p.read_all(Subprocess::Stream::Stderr);
  size_t n = 0;
  for (size_t at = err.find(needle); at != std::string::npos; at = err.find(needle, at + 1)) ++n;
  return n;
}

class ReloadTest : public ProxyTest {
 protected:
  void rewrite(const std::string& yaml) {
    // Write a new file and rename it over the old one, as editors and config tools do.
    std::string tmp = proxy_.config_path + ".new";
    std::ofstream(tmp) << yaml;
    ASSERT_EQ(std::rename(tmp.c_str(), proxy_.config_path.c_str()), 0);
  }
  bool wait_reloads(size_t n) {
    return eventually([&] { return count_lines(*proxy_.process, "configuration reloaded") >= n; },
                      std::chrono::seconds(10));
  }
};

TEST_F(ReloadTest, ValidChangeAppliesWithoutDisturbingCallsInFlight) {
  start_backends(2);
  start(simple_config({backends_[0].address()}, "round_robin"));
  auto s = stub();
  EXPECT_EQ(answer_of(*s), "greeter-1");
  // In flight across the reload: a slow unary call and an open bidi stream.
  SlowCalls slow(*s, 1, 1500, 20000);
  grpc::ClientContext bidi_ctx;
  auto bidi = s->SayHelloBidi(&bidi_ctx);
  helloworld::HelloRequest ping;
  ping.set_name("before");
  helloworld::HelloReply pong;
  ASSERT_TRUE(bidi->Write(ping));
  ASSERT_TRUE(bidi->Read(&pong));
  EXPECT_EQ(backend_of(pong.message()), "greeter-1");
  ASSERT_TRUE(eventually([&] { return backend_stats(backends_[0]).calls() >= 3; },
                         std::chrono::seconds(5)));

  rewrite(simple_config({backends_[1].address()}, "round_robin"));
  proxy_.process->send_signal(SIGHUP);
  ASSERT_TRUE(wait_reloads(1)) << proxy_.process->read_all(Subprocess::Stream::Stderr);
  EXPECT_TRUE(eventually([&] { return answer_of(*s) == "greeter-2"; }, std::chrono::seconds(5)));

  // The stream stays on the backend it started on and keeps working.
  ping.set_name("after");
  ASSERT_TRUE(bidi->Write(ping));
  ASSERT_TRUE(bidi->Read(&pong));
  EXPECT_EQ(backend_of(pong.message()), "greeter-1");
  bidi->WritesDone();
  EXPECT_TRUE(bidi->Finish().ok());
  ASSERT_TRUE(slow.wait(std::chrono::seconds(20)));
  EXPECT_TRUE(slow.status(0).ok()) << slow.status(0).error_message();
  EXPECT_EQ(backend_of(slow.reply(0).message()), "greeter-1");
  // The listener kept its socket and the client its connection.
  auto [code, metrics] = http_get(proxy_.admin_port, "/metrics");
  EXPECT_NE(metrics.find("h2mesh_downstream_connections_total 1\n"), std::string::npos) << metrics;
}

// Clusters "one" and "two" (one backend each); every call routed to `route_to`.
std::string two_clusters(const std::string& route_to, const std::string& one,
                         const std::string& two) {
  return "workers: 1\nadmin:\n  address: \"127.0.0.1:0\"\n"
         "listeners:\n  - name: grpc\n    address: \"127.0.0.1:0\"\n    routes:\n"
         "      - cluster: " + route_to + "\n"
         "clusters:\n  - name: one\n    endpoints: [\"" + one + "\"]\n"
         "  - name: two\n    endpoints: [\"" + two + "\"]\n";
}

// A client connection opened before a reload follows the new routes for the calls it starts
// after it, while the call it had in flight finishes under the old ones.
TEST_F(ReloadTest, ConnectionOpenedBeforeTheReloadGetsTheNewRoutes) {
  start_backends(2);
  start(two_clusters("one", backends_[0].address(), backends_[1].address()));
  auto s = stub();
  EXPECT_EQ(answer_of(*s), "greeter-1");
  SlowCalls slow(*s, 1, 1500, 20000);
  ASSERT_TRUE(eventually([&] { return backend_stats(backends_[0]).calls() >= 2; },
                         std::chrono::seconds(5)));

  rewrite(two_clusters("two", backends_[0].address(), backends_[1].address()));
  proxy_.process->send_signal(SIGHUP);
  ASSERT_TRUE(wait_reloads(1)) << proxy_.process->read_all(Subprocess::Stream::Stderr);
  // The log line comes from the main thread; the worker applies the routes a moment later.
  EXPECT_TRUE(eventually([&] { return answer_of(*s) == "greeter-2"; }, std::chrono::seconds(5)));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(answer_of(*s), "greeter-2");

  ASSERT_TRUE(slow.wait(std::chrono::seconds(20)));
  EXPECT_TRUE(slow.status(0).ok()) << slow.status(0).error_message();
  EXPECT_EQ(backend_of(slow.reply(0).message()), "greeter-1") << "the call in flight kept its route";
  auto [code, metrics] = http_get(proxy_.admin_port, "/metrics");
  EXPECT_NE(metrics.find("h2mesh_downstream_connections_total 1\n"), std::string::npos)
      << "all on the connection opened before the reload: " << metrics;
}

TEST_F(ReloadTest, InvalidChangeIsRefusedAndTheOldConfigKeepsServing) {
  start_backends(2);
  start(simple_config({backends_[0].address()}, "round_robin"));
  auto s = stub();
  EXPECT_EQ(answer_of(*s), "greeter-1");
  std::string bad = simple_config({backends_[1].address()}, "round_robin");
  bad = std::regex_replace(bad, std::regex("lb_policy: round_robin"), "lb_policy: fastest");
  rewrite(bad);
  proxy_.process->send_signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return count_lines(*proxy_.process, "refused") >= 1; },
                         std::chrono::seconds(10)));
  std::string err = proxy_.process->read_all(Subprocess::Stream::Stderr);
  EXPECT_NE(err.find("lb_policy"), std::string::npos) << err;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(answer_of(*s), "greeter-1");
  EXPECT_EQ(count_lines(*proxy_.process, "configuration reloaded"), 0u);
  EXPECT_EQ(http_get(proxy_.admin_port, "/ready").first, 200);
}

TEST_F(ReloadTest, FileChangeReloadsWithoutASignal) {
  start_backends(2);
  start(simple_config({backends_[0].address()}, "round_robin"));
  auto s = stub();
  EXPECT_EQ(answer_of(*s), "greeter-1");
  rewrite(simple_config({backends_[0].address(), backends_[1].address()}, "round_robin"));
  ASSERT_TRUE(wait_reloads(1)) << proxy_.process->read_all(Subprocess::Stream::Stderr);
  std::map<std::string, int> seen;
  for (int i = 0; i < 10; ++i) seen[answer_of(*s)]++;
  EXPECT_EQ(seen["greeter-1"], 5);
  EXPECT_EQ(seen["greeter-2"], 5);
}

TEST_F(ReloadTest, NewListenerIsBoundAndRemovedOneStops) {
  start_backends(1);
  start(simple_config({backends_[0].address()}, "round_robin"));
  std::string yaml = simple_config({backends_[0].address()}, "round_robin");
  yaml = std::regex_replace(yaml, std::regex("  - name: grpc\n    address: \"127.0.0.1:0\""),
                            "  - name: second\n    address: \"[::1]:0\"");
  rewrite(yaml);
  proxy_.process->send_signal(SIGHUP);
  ASSERT_TRUE(wait_reloads(1));
  auto line = proxy_.process->wait_for_line(
      Subprocess::Stream::Stderr,
      [](const std::string& l) { return l.find("listener second listening on") != std::string::npos; },
      std::chrono::seconds(5));
  ASSERT_TRUE(line.has_value());
  std::string port = line->substr(line->rfind(':') + 1);
  auto v6 = helloworld::Greeter::NewStub(make_channel("[::1]:" + port));
  EXPECT_EQ(answer_of(*v6), "greeter-1");
  // The old listener's port no longer accepts new connections.
  auto old = helloworld::Greeter::NewStub(make_channel(proxy_.target()));
  EXPECT_NE(answer_of(*old).find("error"), std::string::npos);
}

}  // namespace
}  // namespace h2mesh_test
