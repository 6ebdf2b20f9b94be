// Local rate limits against a real greeter with two workers: the limit is the whole proxy's,
// one connection (one worker) can use all of it, refused calls never reach the backend, and
// other routes are not affected.

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "harness.h"

namespace h2mesh_test {
namespace {

using Clock = std::chrono::steady_clock;

// Calls with :authority limited.example use route 0 (limited); the others the default route.
std::string limited_config(const std::string& endpoint, const std::string& route_limit,
                           const std::string& listener_limit = "") {
  return "workers: 2\nadmin:\n  address: \"127.0.0.1:0\"\nlisteners:\n  - name: grpc\n"
         "    address: \"127.0.0.1:0\"\n" +
         (listener_limit.empty() ? "" : "    rate_limit: " + listener_limit + "\n") +
         "    routes:\n"
         "      - match: { authority: \"limited.example\" }\n        cluster: greeter\n" +
         (route_limit.empty() ? "" : "        rate_limit: " + route_limit + "\n") +
         "      - cluster: greeter\nclusters:\n  - name: greeter\n    endpoints: [\"" + endpoint +
         "\"]\n";
}

std::unique_ptr<helloworld::Greeter::Stub> limited_stub(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "limited.example");
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return helloworld::Greeter::NewStub(
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
}

struct Tally {
  int ok = 0;
  int exhausted = 0;
  int other = 0;
  std::string exhausted_message;
};

// One unary call after the other on `stub` until `n` calls or `duration` passed.
Tally call(helloworld::Greeter::Stub& stub, int n, Clock::duration duration = std::chrono::hours(1)) {
  Tally t;
  const auto end = Clock::now() + duration;
  for (int i = 0; i < n && Clock::now() < end; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    helloworld::HelloRequest req;
    req.set_name("limited");
    helloworld::HelloReply reply;
    grpc::Status st = stub.SayHello(&ctx, req, &reply);
    if (st.ok()) {
      ++t.ok;
    } else if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++t.exhausted;
      t.exhausted_message = st.error_message();
    } else {
      ++t.other;
      ADD_FAILURE() << st.error_code() << " " << st.error_message();
    }
  }
  return t;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

TEST_F(ProxyTest, RouteRateLimitAdmitsBurstAndRateAndRefusesTheRestWithoutUpstreamWork) {
  start_backends(1);
  start(limited_config(backends_[0].address(), "{ calls_per_second: 20, burst: 20 }"));
  auto limited = limited_stub(proxy_.target());
  const uint64_t backend_before = backend_stats(backends_[0]).calls();

  const auto t0 = Clock::now();
  Tally t = call(*limited, 200);
  const double elapsed = seconds_since(t0);
  std::printf("200 calls in %.3fs: %d OK, %d RESOURCE_EXHAUSTED\n", elapsed, t.ok, t.exhausted);
  EXPECT_EQ(t.ok + t.exhausted, 200);
  // The limit of the whole proxy: at most the burst plus the rate over the time taken.
  EXPECT_LE(t.ok, 20 + static_cast<int>(20 * elapsed) + 1);
  // A fresh proxy gives each of the 2 workers half the burst at once.
  EXPECT_GE(t.ok, 10);
  EXPECT_GT(t.exhausted, 0);
  EXPECT_NE(t.exhausted_message.find("rate limit of route 0 of listener grpc exceeded "
                                     "(20 calls/s, burst 20)"),
            std::string::npos)
      << t.exhausted_message;

  // Refused calls did no upstream work: the backend saw exactly the admitted ones.
  EXPECT_EQ(backend_stats(backends_[0]).calls() - backend_before, static_cast<uint64_t>(t.ok));
  EXPECT_EQ(metric(proxy_.admin_port, "h2mesh_route_rate_limited_total{listener=\"grpc\",route=\"0\"}"),
            static_cast<uint64_t>(t.exhausted));

  // The other route has no limit: all its calls pass while route 0 is at its limit.
  auto open = stub();
  Tally o = call(*open, 100);
  EXPECT_EQ(o.ok, 100);
  EXPECT_EQ(metric(proxy_.admin_port, "h2mesh_route_rate_limited_total{listener=\"grpc\",route=\"0\"}"),
            static_cast<uint64_t>(t.exhausted));
}

TEST_F(ProxyTest, OneConnectionUsesTheWholeRateOfTheProxy) {
  start_backends(1);
  start(limited_config(backends_[0].address(), "{ calls_per_second: 20, burst: 10 }"));
  auto limited = limited_stub(proxy_.target());
  // One connection lands on one worker; a fixed split would give it 5 + 10/s, i.e. 30 in 2.5 s.
  const auto t0 = Clock::now();
  Tally t = call(*limited, 1000000, std::chrono::milliseconds(2500));
  const double elapsed = seconds_since(t0);
  std::printf("%.3fs of calls on one connection: %d OK, %d RESOURCE_EXHAUSTED\n", elapsed, t.ok,
              t.exhausted);
  EXPECT_GT(t.exhausted, 0);
  EXPECT_LE(t.ok, 10 + static_cast<int>(20 * elapsed) + 1);
  // The worker's share follows its demand within a few 100 ms rounds: 20/s for most of the time.
  EXPECT_GE(t.ok, 40);
}

TEST_F(ProxyTest, ListenerRateLimitCoversEveryRoute) {
  start_backends(1);
  start(limited_config(backends_[0].address(), "", "{ calls_per_second: 5, burst: 5 }"));
  auto limited = limited_stub(proxy_.target());
  auto open = stub();
  const auto t0 = Clock::now();
  Tally a = call(*limited, 50);
  Tally b = call(*open, 50);
  const double elapsed = seconds_since(t0);
  EXPECT_LE(a.ok + b.ok, 5 + static_cast<int>(5 * elapsed) + 1);
  EXPECT_GE(a.ok, 2);  // 5 over 2 workers: each starts with at least 2
  EXPECT_GT(b.exhausted, 0);
  EXPECT_NE(b.exhausted_message.find("rate limit of listener grpc exceeded"), std::string::npos)
      << b.exhausted_message;
  EXPECT_EQ(metric(proxy_.admin_port, "h2mesh_listener_rate_limited_total{listener=\"grpc\"}"),
            static_cast<uint64_t>(a.exhausted + b.exhausted));
}

}  // namespace
}  // namespace h2mesh_test
