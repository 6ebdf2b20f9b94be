// Real greeter backends and a real h2mesh process; real grpc++ clients through it.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "greeter/payload.h"
#include "harness.h"

namespace h2mesh_test {
namespace {

using helloworld::HelloReply;
using helloworld::HelloRequest;

std::map<std::string, int> unary_spread(helloworld::Greeter::Stub& stub, int calls, int* failed) {
  std::map<std::string, int> counts;
  for (int i = 0; i < calls; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    HelloRequest req;
    req.set_name("spread");
    HelloReply reply;
    auto st = stub.SayHello(&ctx, req, &reply);
    if (st.ok()) {
      counts[backend_of(reply.message())]++;
    } else {
      ++*failed;
    }
  }
  return counts;
}

class BalancingTest : public ProxyTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(BalancingTest, UnaryCallsOverOneChannelReachEveryBackend) {
  start_backends(4);
  start(simple_config(endpoints(), GetParam()));
  auto s = stub();
  int failed = 0;
  auto counts = unary_spread(*s, 400, &failed);
  EXPECT_EQ(failed, 0);
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& b : backends_) {
    EXPECT_GT(counts[b.id], 0) << b.id;
    if (std::string(GetParam()) == "round_robin") {
      EXPECT_NEAR(counts[b.id], 100, 10) << b.id;
    }
  }
  // Every call above went over one client connection.
  auto [code, metrics] = http_get(proxy_.admin_port, "/metrics");
  EXPECT_EQ(code, 200);
  EXPECT_NE(metrics.find("h2mesh_downstream_connections_total 1\n"), std::string::npos) << metrics;
}

INSTANTIATE_TEST_SUITE_P(Policies, BalancingTest,
                         ::testing::Values("round_robin", "random", "least_request"));

TEST_F(ProxyTest, LeastRequestAvoidsTheBusyBackend) {
  start_backends(2);
  start(simple_config(endpoints(), "least_request"));
  auto s = stub();
  // Pin 6 slow calls in flight, then the quick calls must avoid the backend holding more.
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<HelloReply> replies(6);
  std::vector<grpc::Status> statuses(6);
  for (int i = 0; i < 6; ++i) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-delay-ms", "1500");
    HelloRequest req;
    req.set_name("slow");
    auto rpc = s->AsyncSayHello(ctx.get(), req, &cq);
    rpc->Finish(&replies[i], &statuses[i], reinterpret_cast<void*>(static_cast<intptr_t>(i)));
    ctxs.push_back(std::move(ctx));
  }
  ASSERT_TRUE(eventually(
      [&] { return backend_stats(backends_[0]).calls() + backend_stats(backends_[1]).calls() == 6; },
      std::chrono::seconds(10)));
  int failed = 0;
  auto counts = unary_spread(*s, 20, &failed);
  EXPECT_EQ(failed, 0);
  // In-flight counts differ only if the slow calls were unevenly spread; P2C over 2 hosts always
  // compares both, so every quick call goes to the less loaded one (ties allowed either way).
  uint64_t slow0 = backend_stats(backends_[0]).calls() - counts[backends_[0].id];
  uint64_t slow1 = backend_stats(backends_[1]).calls() - counts[backends_[1].id];
  if (slow0 > slow1) {
    EXPECT_EQ(counts[backends_[0].id], 0);
  }
  if (slow1 > slow0) {
    EXPECT_EQ(counts[backends_[1].id], 0);
  }
  for (int i = 0; i < 6; ++i) {
    void* tag;
    bool ok;
    ASSERT_TRUE(cq.Next(&tag, &ok));
  }
  for (const auto& st : statuses) EXPECT_TRUE(st.ok()) << st.error_message();
}

TEST_F(ProxyTest, ServerStreamOfSixteenMiBArrivesByteForByte) {
  start_backends(2);
  start(simple_config(endpoints(), "round_robin"));
  auto s = stub();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  HelloRequest req;
  req.set_name("big");
  req.set_reply_count(4);
  req.set_reply_size(4 << 20);
  auto reader = s->SayHelloServerStream(&ctx, req);
  HelloReply reply;
  uint32_t n = 0;
  size_t total = 0;
  while (reader->Read(&reply)) {
    EXPECT_EQ(reply.index(), n);
    ASSERT_EQ(reply.payload().size(), 4u << 20);
    EXPECT_FALSE(greeter::find_pattern_mismatch(reply.index(), reply.payload()).has_value());
    total += reply.payload().size();
    ++n;
  }
  auto st = reader->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(total, 16u << 20);
}

TEST_F(ProxyTest, ClientStreamArrivesComplete) {
  start_backends(1);
  start(simple_config(endpoints(), "round_robin"));
  auto s = stub();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  HelloReply reply;
  auto writer = s->SayHelloClientStream(&ctx, &reply);
  uint64_t hash = greeter::kFnvOffsetBasis;
  size_t bytes = 0;
  for (uint32_t i = 0; i < 24; ++i) {
    HelloRequest req;
    req.set_name("part");
    req.set_payload(greeter::make_pattern_payload(i, 256 * 1024 + i));
    hash = greeter::fnv1a64(req.payload(), hash);
    bytes += req.payload().size();
    ASSERT_TRUE(writer->Write(req));
  }
  writer->WritesDone();
  auto st = writer->Finish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reply.payload(), greeter::encode_le64(hash));
  EXPECT_NE(reply.message().find("24 messages, " + std::to_string(bytes) + " bytes"),
            std::string::npos)
      << reply.message();
}

TEST_F(ProxyTest, BidiStreamEchoesEveryMessageInOrder) {
  start_backends(1);
  start(simple_config(endpoints(), "round_robin"));
  auto s = stub();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = s->SayHelloBidi(&ctx);
  for (uint32_t i = 0; i < 50; ++i) {
    HelloRequest req;
    req.set_name("n" + std::to_string(i));
    req.set_payload(greeter::make_pattern_payload(i, 1000 + 977 * i));
    ASSERT_TRUE(stream->Write(req));
    HelloReply reply;
    ASSERT_TRUE(stream->Read(&reply));
    EXPECT_EQ(reply.payload(), req.payload());
    EXPECT_NE(reply.message().find("n" + std::to_string(i) + "!"), std::string::npos);
  }
  stream->WritesDone();
  auto st = stream->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
}

TEST_F(ProxyTest, BackendStatusAndMessagePassThrough) {
  start_backends(1);
  start(simple_config(endpoints(), "round_robin"));
  auto s = stub();
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-fail-code", "7");
  HelloRequest req;
  HelloReply reply;
  auto st = s->SayHello(&ctx, req, &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(st.error_message(), "failing as asked");
}

TEST_F(ProxyTest, NoMatchingRouteGivesUnimplemented) {
  start_backends(1);
  std::string yaml =
      "workers: 1\nadmin:\n  address: \"127.0.0.1:0\"\nlisteners:\n  - name: grpc\n"
      "    address: \"127.0.0.1:0\"\n    routes:\n      - match: { prefix: \"/other.Service/\" }\n"
      "        cluster: greeter\n      - match: { path: \"/helloworld.Greeter/SayHelloBidi\" }\n"
      "        cluster: greeter\nclusters:\n  - name: greeter\n    endpoints:\n      - \"" +
      backends_[0].address() + "\"\n";
  start(yaml);
  auto s = stub();
  grpc::ClientContext ctx;
  HelloRequest req;
  HelloReply reply;
  auto st = s->SayHello(&ctx, req, &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(st.error_message().find("no route"), std::string::npos) << st.error_message();
  // A full-method route does match.
  grpc::ClientContext ctx2;
  auto bidi = s->SayHelloBidi(&ctx2);
  HelloRequest r2;
  r2.set_name("x");
  ASSERT_TRUE(bidi->Write(r2));
  HelloReply rep2;
  EXPECT_TRUE(bidi->Read(&rep2));
  bidi->WritesDone();
  EXPECT_TRUE(bidi->Finish().ok());
}

TEST_F(ProxyTest, AuthorityRoutesToItsCluster) {
  start_backends(2);
  std::string yaml =
      "workers: 1\nadmin:\n  address: \"127.0.0.1:0\"\nlisteners:\n  - name: grpc\n"
      "    address: \"127.0.0.1:0\"\n    routes:\n"
      "      - match: { authority: \"two.example\" }\n        cluster: two\n"
      "      - cluster: one\nclusters:\n  - name: one\n    endpoints: [\"" +
      backends_[0].address() + "\"]\n  - name: two\n    endpoints: [\"" + backends_[1].address() +
      "\"]\n";
  start(yaml);
  grpc::ChannelArguments args;
  args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "two.example");
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto two = helloworld::Greeter::NewStub(
      grpc::CreateCustomChannel(proxy_.target(), grpc::InsecureChannelCredentials(), args));
  auto one = stub();
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext c1, c2;
    HelloRequest req;
    HelloReply r1, r2;
    ASSERT_TRUE(one->SayHello(&c1, req, &r1).ok());
    ASSERT_TRUE(two->SayHello(&c2, req, &r2).ok());
    EXPECT_EQ(backend_of(r1.message()), backends_[0].id);
    EXPECT_EQ(backend_of(r2.message()), backends_[1].id);
  }
}

TEST_F(ProxyTest, NoReachableEndpointGivesUnavailableWithReason) {
  // A port nobody listens on: bind one, note it, close it.
  Backend b = start_backend(dir_, "gone");
  std::string addr = b.address();
  b.process->send_signal(SIGKILL);
  ASSERT_TRUE(b.process->wait(std::chrono::seconds(10)).has_value());
  start(simple_config({addr}, "round_robin"));
  auto s = stub();
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    HelloRequest req;
    HelloReply reply;
    auto t0 = std::chrono::steady_clock::now();
    auto st = s->SayHello(&ctx, req, &reply);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_NE(st.error_message().find(addr), std::string::npos) << st.error_message();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  }
}

TEST_F(ProxyTest, Ipv6ListenerAndEndpoint) {
  Backend b = start_backend(dir_, "v6");
  backends_.push_back(std::move(b));
  std::string yaml =
      "workers: 2\nadmin:\n  address: \"[::1]:0\"\nlisteners:\n  - name: grpc\n"
      "    address: \"[::1]:0\"\n    routes:\n      - cluster: greeter\nclusters:\n"
      "  - name: greeter\n    endpoints: [\"" + backends_[0].address() + "\"]\n";
  start(yaml);
  auto s = helloworld::Greeter::NewStub(make_channel("[::1]:" + std::to_string(proxy_.port)));
  grpc::ClientContext ctx;
  HelloRequest req;
  req.set_name("six");
  HelloReply reply;
  auto st = s->SayHello(&ctx, req, &reply);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reply.message(), "Hello from v6, six!");
}

// Operators find the workers by name in top -H, perf and /proc.
TEST_F(ProxyTest, WorkerThreadsAreNamed) {
  start_backends(1);
  start(simple_config(endpoints(), "round_robin", 2));
  ASSERT_NE(proxy_.port, 0);
  std::set<std::string> names;
  const std::string tasks = "/proc/" + std::to_string(proxy_.process->pid()) + "/task";
  for (const auto& entry : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  EXPECT_TRUE(names.count("h2mesh-w0")) << "threads: " << ::testing::PrintToString(names);
  EXPECT_TRUE(names.count("h2mesh-w1")) << "threads: " << ::testing::PrintToString(names);
}

TEST_F(ProxyTest, AdminShowsWhereCallsWent) {
  start_backends(2);
  start(simple_config(endpoints(), "round_robin", 2));
  EXPECT_EQ(http_get(proxy_.admin_port, "/ready"), std::make_pair(200, std::string("ready\n")));
  auto s = stub();
  int failed = 0;
  unary_spread(*s, 10, &failed);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-fail-code", "14");
    HelloRequest req;
    HelloReply reply;
    EXPECT_EQ(s->SayHello(&ctx, req, &reply).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  auto [code, metrics] = http_get(proxy_.admin_port, "/metrics");
  ASSERT_EQ(code, 200);
  EXPECT_NE(metrics.find("h2mesh_cluster_calls_total{cluster=\"greeter\"} 11"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("h2mesh_cluster_calls_by_status_total{cluster=\"greeter\",grpc_status=\"OK\"} 10"),
            std::string::npos);
  EXPECT_NE(metrics.find("grpc_status=\"UNAVAILABLE\"} 1"), std::string::npos);
  for (const auto& b : backends_) {
    std::regex line("h2mesh_endpoint_calls_total\\{cluster=\"greeter\",endpoint=\"" + b.address() +
                    "\"\\} (\\d+)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(metrics, m, line)) << b.address();
    EXPECT_GE(std::stoi(m[1]), 5);
    std::regex conns("h2mesh_endpoint_upstream_connections_active\\{cluster=\"greeter\",endpoint=\"" +
                     b.address() + "\"\\} (\\d+)");
    ASSERT_TRUE(std::regex_search(metrics, m, conns));
    EXPECT_EQ(m[1], "1");  // one worker served the one client connection
  }
  auto [ccode, clusters] = http_get(proxy_.admin_port, "/clusters");
  ASSERT_EQ(ccode, 200);
  EXPECT_NE(clusters.find("\"name\":\"greeter\""), std::string::npos) << clusters;
  EXPECT_NE(clusters.find("\"lb_policy\":\"round_robin\""), std::string::npos);
  for (const auto& b : backends_)
    EXPECT_NE(clusters.find("\"address\":\"" + b.address() + "\",\"state\":\"available\""),
              std::string::npos)
        << clusters;
  EXPECT_EQ(http_get(proxy_.admin_port, "/nope").first, 404);
}

}  // namespace
}  // namespace h2mesh_test
