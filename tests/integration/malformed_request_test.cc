// Requests a gRPC library would never send, through a real h2mesh process to real greeters: each
// is answered the way gRPC's own servers answer it, without work for any backend, and counted.

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fakes/h2_client.h"
#include "harness.h"

namespace h2mesh_test {
namespace {

using namespace std::chrono_literals;
using h2mesh_test_fakes::h2_request;
using h2mesh_test_fakes::H2Reply;

// An empty HelloRequest in gRPC's length-prefixed framing.
const std::string kEmptyMessage(5, '\0');

std::vector<std::pair<std::string, std::string>> say_hello_headers(uint16_t port,
                                                                   const std::string& timeout) {
  return {{":method", "POST"},
          {":scheme", "http"},
          {":path", "/helloworld.Greeter/SayHello"},
          {":authority", "127.0.0.1:" + std::to_string(port)},
          {"content-type", "application/grpc"},
          {"te", "trailers"},
          {"grpc-timeout", timeout}};
}

std::optional<uint64_t> metric(uint16_t admin_port, const std::string& name) {
  auto [code, body] = http_get(admin_port, "/metrics");
  if (code != 200) return std::nullopt;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with(name + " ")) return std::stoull(line.substr(name.size() + 1));
  return std::nullopt;
}

constexpr char kMalformedTimeouts[] = "h2mesh_calls_malformed_timeout_total";

class MalformedRequestTest : public ProxyTest {
 protected:
  void SetUp() override {
    start_backends(1);
    start(simple_config(endpoints(), "round_robin"));
    ASSERT_NE(proxy_.port, 0) << "the proxy did not start";
  }
  // A trailers-only answer as grpc-go's server gives it: HTTP 400, INTERNAL, the header named.
  void expect_malformed_timeout_answer(const H2Reply& r, const std::string& value) {
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.header(":status"), "400");
    EXPECT_EQ(r.header("content-type"), "application/grpc");
    EXPECT_EQ(r.header("grpc-status"), "13");
    EXPECT_NE(r.header("grpc-message").find("malformed grpc-timeout"), std::string::npos)
        << r.header("grpc-message");
    EXPECT_NE(r.header("grpc-message").find(value), std::string::npos) << r.header("grpc-message");
    EXPECT_TRUE(r.headers_ended_stream) << "trailers-only";
    EXPECT_TRUE(r.body.empty());
  }
};

TEST_F(MalformedRequestTest, MalformedGrpcTimeoutIsAnsweredInternalWithoutUpstreamWork) {
  // The same client with a valid grpc-timeout reaches the backend: the request itself is sound.
  H2Reply ok = h2_request(proxy_.port, say_hello_headers(proxy_.port, "5S"), kEmptyMessage, true);
  ASSERT_EQ(ok.error, "");
  EXPECT_EQ(ok.header(":status"), "200");
  EXPECT_EQ(ok.header("grpc-status"), "0") << ok.header("grpc-message");
  ASSERT_EQ(backend_stats(backends_[0]).calls(), 1u);

  const std::vector<std::string> bad = {"123456789S", "10s", "1.5S", "S", "-1m"};
  for (const std::string& value : bad) {
    SCOPED_TRACE(value);
    H2Reply r = h2_request(proxy_.port, say_hello_headers(proxy_.port, value), kEmptyMessage, true);
    expect_malformed_timeout_answer(r, value);
    EXPECT_TRUE(r.closed);
    EXPECT_EQ(r.close_code, 0u);
  }
  EXPECT_EQ(backend_stats(backends_[0]).calls(), 1u) << "no malformed call reached the backend";
  EXPECT_TRUE(eventually([&] { return metric(proxy_.admin_port, kMalformedTimeouts) == bad.size(); },
                         5000ms))
      << kMalformedTimeouts << " is " << metric(proxy_.admin_port, kMalformedTimeouts).value_or(0);
  // A flood of them is logged once per second at most, not once per request.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i)
    h2_request(proxy_.port, say_hello_headers(proxy_.port, "9x"), kEmptyMessage, true);
  const auto seconds_taken =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0);
  ASSERT_TRUE(proxy_.process->running());
  const std::string log = proxy_.process->read_all(Subprocess::Stream::Stderr);
  size_t lines = 0;
  for (size_t at = log.find("malformed grpc-timeout"); at != std::string::npos;
       at = log.find("malformed grpc-timeout", at + 1))
    ++lines;
  EXPECT_GE(lines, 1u) << log;
  // The first burst's line, then one per started second of the flood at most.
  EXPECT_LE(lines, static_cast<size_t>(seconds_taken.count()) + 2) << "not rate-limited:\n" << log;
}

TEST_F(MalformedRequestTest, MalformedGrpcTimeoutWhileTheClientStillSendsEndsTheStream) {
  // The request body stays open: after the answer the proxy resets the stream with NO_ERROR,
  // as grpc-go does, so that the client stops sending (RFC 9113 section 8.1).
  H2Reply r = h2_request(proxy_.port, say_hello_headers(proxy_.port, "99999999999n"), "", false);
  expect_malformed_timeout_answer(r, "99999999999n");
  EXPECT_TRUE(r.closed) << "the stream was left open";
  EXPECT_EQ(r.close_code, 0u) << "RST_STREAM code";
  EXPECT_EQ(backend_stats(backends_[0]).calls(), 0u);
}

}  // namespace
}  // namespace h2mesh_test
