// Mesh mode end to end, as root (issue 12's Tests). Each test builds the picture of
// mesh_fixture.h in network namespaces of its own: 4 greeter pods behind the ClusterIP Service
// greeter.grpcdemo (kube-proxy-like DNAT on the node), a client pod with the fake API server, and
// the sidecar as a user runs it (`h2mesh iptables install`, then `h2mesh run --mesh` as uid
// 1337). Unchanged clients dial the Services by DNS name; what they and the pods saw is checked,
// with the sidecar's /metrics and log where the issue asks for a counter or a log line.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <thread>

#include "mesh_fixture.h"

namespace h2mesh_test::mesh {
namespace {

using namespace std::chrono_literals;

constexpr int kCalls = 24;
const std::string kGreeterTarget = std::string(kGreeterHost) + ":" + std::to_string(kGrpcPort);
// The issue asks that new endpoints get calls within 1 s of the slice update; the assertion allows
// three times that for sanitizer builds on 2 shared cores, and the measured figure is printed.
constexpr auto kNewEndpointBound = 3s;
constexpr auto kWait = 30s;  // bound of every wait for something that takes milliseconds

std::string pod_name(int n) { return "greeter-" + std::to_string(n); }

long long ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// ---- byte streams for the relay tests ----------------------------------------------------------

// Byte p of the test stream is byte p % 8 of splitmix64(p / 8): any byte lost, added or moved by
// the relay shows as a mismatch (a periodic pattern would hide moves by a multiple of its period).
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void fill_stream(uint64_t pos, char* out, size_t n) {
  for (size_t i = 0; i < n;) {
    const uint64_t p = pos + i;
    const uint64_t word = splitmix64(p / 8);
    for (unsigned b = p % 8; b < 8 && i < n; ++b, ++i) out[i] = static_cast<char>(word >> (8 * b));
  }
}

// What the tcp pod's count server answers after reading `data` and the client's EOF.
std::string count_reply(const std::string& data) {
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64, as the server computes it
  for (char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  char reply[96];
  snprintf(reply, sizeof(reply), "got %zu bytes fnv %016llx\n", data.size(),
           static_cast<unsigned long long>(hash));
  return reply;
}

// Sends `total` bytes of the stream on `fd` (then SHUT_WR) from a thread while this one reads the
// echo until EOF and compares it byte for byte. "" when all of it came back in order.
std::string echo_round_trip(int fd, size_t total) {
  std::string write_error;
  std::thread writer([&] {
    std::vector<char> chunk(256 << 10);
    for (size_t pos = 0; pos < total; pos += chunk.size()) {
      const size_t n = std::min(chunk.size(), total - pos);
      fill_stream(pos, chunk.data(), n);
      if (!send_all(fd, chunk.data(), n)) {
        write_error = "send failed at byte " + std::to_string(pos) + ": " + strerror(errno);
        break;
      }
    }
    shutdown(fd, SHUT_WR);
  });
  std::string read_error;
  std::vector<char> got(256 << 10), expected(256 << 10);
  size_t received = 0;
  for (;;) {
    ssize_t n = recv(fd, got.data(), got.size(), 0);
    if (n == 0) break;
    if (n < 0) {
      read_error = "recv failed after " + std::to_string(received) + " bytes: " + strerror(errno);
      break;
    }
    fill_stream(received, expected.data(), static_cast<size_t>(n));
    if (memcmp(got.data(), expected.data(), static_cast<size_t>(n)) != 0) {
      read_error = "the echo differs within bytes " + std::to_string(received) + ".." +
                   std::to_string(received + static_cast<size_t>(n));
      break;
    }
    received += static_cast<size_t>(n);
  }
  if (!read_error.empty()) shutdown(fd, SHUT_RDWR);  // unblocks the writer
  writer.join();
  if (!write_error.empty()) return write_error;
  if (!read_error.empty()) return read_error;
  if (received != total)
    return "the echo ended after " + std::to_string(received) + " of " + std::to_string(total) +
           " bytes";
  return "";
}

// Everything the peer sends until its EOF; "<error>" markers on a reset or timeout.
std::string read_to_eof(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return out;
    if (n < 0) return out + "<error: " + strerror(errno) + ">";
    out.append(buf, static_cast<size_t>(n));
  }
}

// Reads until `text` arrived (or EOF/error); returns what was read.
std::string read_until(int fd, const std::string& text) {
  std::string out;
  char c;
  while (out.find(text) == std::string::npos && recv(fd, &c, 1, 0) == 1) out += c;
  return out;
}

class MeshRelayTest : public MeshTest {
 protected:
  void SetUp() override {
    MeshTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(add_tcp_pod());
    ASSERT_NO_FATAL_FAILURE(start_sidecar());
  }
  uint64_t outcome(const char* kind) {
    return metric(std::string("h2mesh_mesh_connections_total{outcome=\"") + kind + "\"}")
        .value_or(0);
  }
  uint64_t relays() { return metric("h2mesh_relay_connections_total").value_or(0); }
};

// ---- unchanged clients, by the Service's name ------------------------------------------------

TEST_F(MeshTest, GrpcppClientIsPinnedToOnePodWithoutTheSidecarAndSpreadWithIt) {
  // Before: kube-proxy's DNAT picks one pod for the one connection.
  CallCounts before = greeter_call(kGreeterTarget, kCalls);
  EXPECT_EQ(before.exit_code, std::optional<int>(0)) << before.output;
  ASSERT_EQ(before.per_pod.size(), 1u) << before.output;
  EXPECT_EQ(before.per_pod.begin()->second, kCalls);

  ASSERT_NO_FATAL_FAILURE(start_sidecar());
  CallCounts after = greeter_call(kGreeterTarget, kCalls);
  expect_spread(after, kCalls, {1, 2, 3, 4});
  // One client connection, recognised as HTTP/2 to the Service's cluster IP.
  EXPECT_EQ(metric("h2mesh_mesh_connections_total{outcome=\"http2\"}"), std::optional<uint64_t>(1));
  EXPECT_EQ(metric("h2mesh_cluster_calls_total{cluster=\"greeter.grpcdemo:50051\",service="
                   "\"greeter\",namespace=\"grpcdemo\"}"),
            std::optional<uint64_t>(kCalls));
}

TEST_F(MeshTest, NodeGrpcJsClientIsPinnedToOnePodWithoutTheSidecarAndSpreadWithIt) {
  CallCounts before = node_call(kGreeterTarget, kCalls);
  EXPECT_EQ(before.exit_code, std::optional<int>(0)) << before.output;
  EXPECT_EQ(before.failed, 0) << before.output;
  ASSERT_EQ(before.per_pod.size(), 1u) << before.output;

  ASSERT_NO_FATAL_FAILURE(start_sidecar());
  CallCounts after = node_call(kGreeterTarget, kCalls);
  expect_spread(after, kCalls, {1, 2, 3, 4});
  EXPECT_EQ(metric("h2mesh_mesh_connections_total{outcome=\"http2\"}"), std::optional<uint64_t>(1));
}

// A --config with a listener and a static cluster, plus --mesh: both work in one process.
TEST_F(MeshTest, ExplicitListenerWithAStaticClusterBalancesBesideTheMesh) {
  std::string yaml =
      "listeners:\n  - name: pods\n    address: \"127.0.0.1:0\"\n    routes:\n"
      "      - cluster: pods\nclusters:\n  - name: pods\n    lb_policy: round_robin\n"
      "    endpoints:\n";
  for (int n = 1; n <= 4; ++n) yaml += "      - \"" + greeter_endpoint(n) + "\"\n";
  ASSERT_NO_FATAL_FAILURE(start_sidecar({}, yaml));
  const uint16_t port = sidecar_listener_port("pods");
  ASSERT_NE(port, 0);

  CallCounts listener = greeter_call("127.0.0.1:" + std::to_string(port), kCalls);
  expect_spread(listener, kCalls, {1, 2, 3, 4});
  CallCounts mesh = greeter_call(kGreeterTarget, kCalls);
  expect_spread(mesh, kCalls, {1, 2, 3, 4});
  EXPECT_EQ(metric("h2mesh_cluster_calls_total{cluster=\"pods\"}"),
            std::optional<uint64_t>(kCalls));
  // The listener's connection came on loopback, not through the rules.
  EXPECT_EQ(metric("h2mesh_mesh_connections_total{outcome=\"http2\"}"), std::optional<uint64_t>(1));
}

// ---- TCP relay --------------------------------------------------------------------------------

TEST_F(MeshRelayTest, Echoes64MiBBothWaysToAPodIpAClusterIpAndAnOpaquePort) {
  constexpr size_t kBytes = 64 << 20;
  struct Destination {
    std::string ip;
    uint16_t port;
    const char* outcome;  // how the sidecar classified the connection
  };
  const Destination destinations[] = {
      {tcp_pod().ip, kEchoPort, "unknown_destination"},  // a pod IP: relayed at once
      {kTcpIp, kEchoPort, "not_http2"},                  // a Service port: detected, then relayed
      {kTcpIp, kOpaquePort, "opaque_port"},              // never inspected
  };
  for (const auto& d : destinations) {
    SCOPED_TRACE(d.ip + ":" + std::to_string(d.port));
    const uint64_t before = outcome(d.outcome);
    int fd = dial_from_client(d.ip, d.port);
    ASSERT_GE(fd, 0) << strerror(errno);
    EXPECT_EQ(echo_round_trip(fd, kBytes), "");
    close(fd);
    EXPECT_EQ(outcome(d.outcome), before + 1);
  }
  EXPECT_GE(metric("h2mesh_relay_bytes_total{direction=\"upstream\"}").value_or(0), 3 * kBytes);
  EXPECT_GE(metric("h2mesh_relay_bytes_total{direction=\"downstream\"}").value_or(0), 3 * kBytes);
  EXPECT_EQ(metric("h2mesh_relay_resets_total"), std::optional<uint64_t>(0));
}

TEST_F(MeshRelayTest, HalfCloseReachesTheServerAndItsReplyStillComesBack) {
  std::string data(1 << 20, '\0');
  fill_stream(0, data.data(), data.size());
  for (const std::string& ip : {tcp_pod().ip, std::string(kTcpIp)}) {
    SCOPED_TRACE(ip);
    int fd = dial_from_client(ip, kCountPort);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_TRUE(send_all(fd, data.data(), data.size()));
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    // The server answers only once it read our EOF, then closes: the reply, then EOF.
    EXPECT_EQ(read_to_eof(fd), count_reply(data));
    close(fd);
  }
}

TEST_F(MeshRelayTest, ServerThatSpeaksFirstGreetsThroughTheSidecar) {
  const uint64_t detected_before = outcome("not_http2");
  for (const std::string& ip : {std::string(kTcpIp), tcp_pod().ip}) {
    SCOPED_TRACE(ip);
    int fd = dial_from_client(ip, kGreetingPort);
    ASSERT_GE(fd, 0) << strerror(errno);
    // Nothing sent: to the Service's cluster IP, the detection timeout must give up and relay.
    EXPECT_EQ(read_until(fd, "\r\n"), "220 tcp pod ready\r\n");
    ASSERT_TRUE(send_all(fd, "PING\r\n", 6));
    EXPECT_EQ(read_until(fd, "\r\n"), "PING\r\n");
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    EXPECT_EQ(read_to_eof(fd), "");
    close(fd);
  }
  EXPECT_EQ(outcome("not_http2"), detected_before + 1);  // the cluster IP's connection
}

TEST_F(MeshRelayTest, PlainHttp11RequestIsAnswered) {
  const uint64_t relays_before = relays();
  const std::pair<std::string, uint16_t> targets[] = {{kTcpIp, kHttpServicePort},
                                                      {tcp_pod().ip, kHttpPodPort}};
  for (const auto& [ip, port] : targets) {
    SCOPED_TRACE(ip);
    auto reply = h2mesh::lab::http_get_in(client().netns, ip, port, "/hello.txt", 20000);
    ASSERT_TRUE(reply.ok()) << reply.error().message;
    EXPECT_EQ(reply->status, 200);
    EXPECT_EQ(reply->body, "hello over HTTP/1.1 from the tcp pod\n");
  }
  EXPECT_EQ(relays(), relays_before + 2);
}

TEST_F(MeshRelayTest, TlsHandshakeAndRequestPassUntouched) {
  const uint64_t relays_before = relays();
  for (const std::string& target : {std::string(kTcpHost) + ":" + std::to_string(kTlsServicePort),
                                    tcp_pod().ip + ":" + std::to_string(kTlsPodPort)}) {
    SCOPED_TRACE(target);
    // The certificate is checked against its name: the sidecar changed no byte of the handshake.
    auto out = run_in_client({tool("openssl"), "s_client", "-connect", target, "-servername",
                              kTcpHost, "-verify_hostname", kTcpHost, "-CAfile", dir() + "/tls.crt",
                              "-verify_return_error", "-ign_eof"},
                             "GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(out.exit_code, 0) << out.out << out.err;
    EXPECT_NE(out.out.find("Verify return code: 0 (ok)"), std::string::npos) << out.out << out.err;
    EXPECT_NE(out.out.find("HTTP/1.0 200 ok"), std::string::npos) << out.out;
  }
  EXPECT_EQ(relays(), relays_before + 2);
}

// ---- scaling through the watch ---------------------------------------------------------------

class MeshScaleTest : public MeshTest {
 protected:
  // Polls /clusters until every endpoint of `pods` shows as removed in the workers' view of the
  // greeter cluster, and returns when that was seen: a worker's counters are copied after it
  // applied the tables posted before, so a call that starts later is balanced without them.
  std::optional<Clock::time_point> wait_removed(const std::vector<int>& pods) {
    bool removed = eventually(
        [&] {
          auto [status, body] = admin_get("/clusters");
          if (status != 200) return false;
          for (int n : pods) {
            const std::string entry =
                "\"address\":\"" + greeter_endpoint(n) + "\",\"state\":\"removed\"";
            if (body.find(entry) == std::string::npos) return false;
          }
          return true;
        },
        kWait);
    if (!removed) return std::nullopt;
    return Clock::now();
  }
};

TEST_F(MeshScaleTest, FourToEightToTwoPodsWithoutAFailedCall) {
  ASSERT_NO_FATAL_FAILURE(start_sidecar());
  auto loop = start_call_loop(kGreeterTarget);
  ASSERT_TRUE(loop);
  const auto started = Clock::now();
  ASSERT_TRUE(loop->wait_until(
      [&](const auto& calls) { return pods_since(calls, started).size() == 4; }, kWait))
      << loop->describe_failures();

  // 4 -> 8: the new pods run first, then the slice lists them (as when they turn ready).
  for (int n = 5; n <= 8; ++n) ASSERT_NO_FATAL_FAILURE(add_greeter(n));
  const auto scaled_up = Clock::now();
  ASSERT_NO_FATAL_FAILURE(publish_greeters({1, 2, 3, 4, 5, 6, 7, 8}));
  ASSERT_TRUE(loop->wait_until(
      [&](const auto& calls) { return pods_since(calls, scaled_up).size() == 8; }, kWait))
      << "not every pod got calls after the scale-up: " << loop->describe_failures();
  for (int n = 5; n <= 8; ++n) {
    Clock::time_point first{};
    for (const auto& c : loop->calls())
      if (c.ok && c.pod == pod_name(n) && c.start >= scaled_up) {
        first = c.end;
        break;
      }
    printf("scale-up: %s's first call ended %lld ms after the slice update\n", pod_name(n).c_str(),
           ms(first - scaled_up));
    EXPECT_LE(first - scaled_up, kNewEndpointBound) << pod_name(n);
  }

  // 8 -> 2, as Kubernetes does it: the leaving pods turn terminating in the slice (kube-proxy
  // and the sidecar stop sending them new calls), then they are deleted.
  const auto scaled_down = Clock::now();
  ASSERT_NO_FATAL_FAILURE(publish_greeters({1, 2}, {3, 4, 5, 6, 7, 8}));
  auto map_changed = wait_removed({3, 4, 5, 6, 7, 8});
  ASSERT_TRUE(map_changed) << "the sidecar kept the terminating pods\n" << sidecar_log();
  printf("scale-down: the sidecar's workers dropped 6 pods %lld ms after the slice update\n",
         ms(*map_changed - scaled_down));
  ASSERT_TRUE(loop->wait_more(100, kWait));
  for (int n = 3; n <= 8; ++n) ASSERT_NO_FATAL_FAILURE(delete_greeter(n));
  ASSERT_NO_FATAL_FAILURE(publish_greeters({1, 2}));
  ASSERT_TRUE(loop->wait_more(100, kWait));

  ASSERT_TRUE(loop->stop()) << "the call loop did not finish";
  const auto& calls = loop->calls();
  EXPECT_EQ(loop->done_failed(), 0) << loop->describe_failures();
  EXPECT_EQ(failures(calls), std::vector<std::string>{});
  const auto after = pods_since(calls, *map_changed);
  EXPECT_EQ(after.size(), 2u) << "calls went to removed pods once the map changed";
  EXPECT_TRUE(after.count("greeter-1") && after.count("greeter-2"));
  printf("scaling: %zu calls, %zu failed\n", calls.size(), failures(calls).size());
}

// ---- interception: loop guard, skipped destinations, the sidecar's own uid ---------------------

TEST_F(MeshTest, ConnectionsToTheOutboundPortItselfAreRefused) {
  ASSERT_NO_FATAL_FAILURE(start_sidecar());
  for (const std::string& ip : {std::string("127.0.0.1"), client().ip}) {
    SCOPED_TRACE(ip);
    int fd = dial_from_client(ip, kOutboundPort);  // not redirected: loopback, or -o lo
    ASSERT_GE(fd, 0) << strerror(errno);
    char c;
    EXPECT_EQ(recv(fd, &c, 1, 0), -1);
    EXPECT_EQ(errno, ECONNRESET) << strerror(errno);
    close(fd);
  }
  EXPECT_EQ(metric("h2mesh_mesh_connections_total{outcome=\"loop_refused\"}"),
            std::optional<uint64_t>(2));
  EXPECT_NE(sidecar_log().find("mesh: refused a connection to 127.0.0.1:15001"), std::string::npos)
      << sidecar_log();
  // And the sidecar still balances.
  expect_spread(greeter_call(kGreeterTarget, kCalls), kCalls, {1, 2, 3, 4});
}

TEST_F(MeshTest, SkippedPortsAndCidrsBypassTheSidecar) {
  ASSERT_NO_FATAL_FAILURE(add_tcp_pod());
  ASSERT_NO_FATAL_FAILURE(start_sidecar({"--skip-outbound-ports", std::to_string(kEchoPort),
                                         "--skip-outbound-cidrs", std::string(kTcpIp) + "/32"}));
  auto relayed = [&] { return metric("h2mesh_relay_connections_total").value_or(0); };
  auto accepted = [&] {
    uint64_t sum = 0;
    for (const char* o : {"http2", "unknown_destination", "opaque_port", "not_http2",
                          "loop_refused", "no_destination"})
      sum +=
          metric(std::string("h2mesh_mesh_connections_total{outcome=\"") + o + "\"}").value_or(0);
    return sum;
  };
  // Each connection works; the skipped ones never reach the sidecar.
  struct Case {
    std::string ip;
    uint16_t port;
    bool skipped;
  };
  const Case cases[] = {{tcp_pod().ip, kEchoPort, true},     // the skipped port
                        {kTcpIp, kCountPort, true},          // the skipped CIDR
                        {tcp_pod().ip, kCountPort, false}};  // neither: relayed
  for (const auto& c : cases) {
    SCOPED_TRACE(c.ip + ":" + std::to_string(c.port));
    const uint64_t relayed_before = relayed(), accepted_before = accepted();
    int fd = dial_from_client(c.ip, c.port);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_TRUE(send_all(fd, "abc", 3));
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    EXPECT_EQ(read_to_eof(fd), c.port == kEchoPort ? "abc" : count_reply("abc"));
    close(fd);
    EXPECT_EQ(relayed(), relayed_before + (c.skipped ? 0 : 1));
    EXPECT_EQ(accepted(), accepted_before + (c.skipped ? 0 : 1));
  }
  // The Service that is not skipped is still balanced.
  expect_spread(greeter_call(kGreeterTarget, kCalls), kCalls, {1, 2, 3, 4});
}

TEST_F(MeshTest, SidecarsOwnUpstreamConnectionsAreNotRedirected) {
  ASSERT_NO_FATAL_FAILURE(start_sidecar());
  expect_spread(greeter_call(kGreeterTarget, kCalls), kCalls, {1, 2, 3, 4});
  // Its connections to the 4 pods (uid 1337) were not sent back to it: had they been, each would
  // have arrived on the outbound port as a relay to a pod IP.
  EXPECT_EQ(metric("h2mesh_mesh_connections_total{outcome=\"http2\"}"), std::optional<uint64_t>(1));
  EXPECT_EQ(metric("h2mesh_mesh_connections_total{outcome=\"unknown_destination\"}"),
            std::optional<uint64_t>(0));
  EXPECT_EQ(metric("h2mesh_relay_connections_total"), std::optional<uint64_t>(0));
  EXPECT_EQ(metric("h2mesh_mesh_connections_total{outcome=\"loop_refused\"}"),
            std::optional<uint64_t>(0));
  EXPECT_GE(metric("h2mesh_endpoint_upstream_connections_total{cluster=\"greeter.grpcdemo:50051\","
                   "service=\"greeter\",namespace=\"grpcdemo\",endpoint=\"" +
                   greeter_endpoint(1) + "\"}")
                .value_or(0),
            1u);
}

TEST_F(MeshTest, SidecarUnderAUidTheRulesDoNotExcludeRefusesToStart) {
  // The rules exclude uid 1337; a sidecar started as 4242 would see its own connections come
  // back to it and relay them again, forever. It says so and exits instead.
  auto sidecar = start_sidecar_as(4242);
  ASSERT_TRUE(sidecar);
  auto code = sidecar->wait(kStartTimeout);
  ASSERT_TRUE(code.has_value()) << "still running:\n"
                                << sidecar->read_all(h2mesh::Subprocess::Stream::Stderr);
  EXPECT_EQ(*code, 1);
  const std::string log = sidecar->read_all(h2mesh::Subprocess::Stream::Stderr);
  EXPECT_NE(log.find("redirect h2mesh's own connections back to it (uid 4242"), std::string::npos)
      << log;
  EXPECT_NE(log.find("--proxy-uid"), std::string::npos) << log;
}

// ---- API server trouble seen from the running sidecar ------------------------------------------

class MeshApiTroubleTest : public MeshScaleTest {
 protected:
  void SetUp() override {
    MeshScaleTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(start_sidecar());
    loop_ = start_call_loop(kGreeterTarget);
    ASSERT_TRUE(loop_);
    const auto started = Clock::now();
    ASSERT_TRUE(loop_->wait_until(
        [&](const auto& calls) { return pods_since(calls, started).size() == 4; }, kWait))
        << loop_->describe_failures();
  }
  void TearDown() override {
    loop_.reset();
    MeshScaleTest::TearDown();
  }

  // A counter of the watch of one collection ("services", "endpointslices").
  uint64_t counter(const std::string& family, const char* collection) {
    return metric(family + "{collection=\"" + collection + "\"}").value_or(0);
  }
  // While the trouble lasts, calls keep going to all 4 pods of the last good map.
  void expect_calls_keep_working(Clock::time_point since) {
    ASSERT_TRUE(loop_->wait_more(50, kWait));
    EXPECT_EQ(pods_since(loop_->calls(), since).size(), 4u);
    EXPECT_EQ(admin_get("/ready").first, 200);  // the last map is still a synced map
  }
  // Once the API server answers again, a change is followed: greeter-4 turns terminating, and
  // calls that start after the workers dropped it go to the 3 others only. Then no call failed.
  void expect_changes_followed() {
    ASSERT_NO_FATAL_FAILURE(publish_greeters({1, 2, 3}, {4}));
    auto changed = wait_removed({4});
    ASSERT_TRUE(changed) << "the change never reached the sidecar\n" << sidecar_log();
    ASSERT_TRUE(loop_->wait_more(50, kWait));
    ASSERT_TRUE(loop_->stop());
    EXPECT_EQ(pods_since(loop_->calls(), *changed).size(), 3u);
    EXPECT_EQ(pods_since(loop_->calls(), *changed).count("greeter-4"), 0u);
    EXPECT_EQ(loop_->done_failed(), 0) << loop_->describe_failures();
  }
  bool logged(const std::string& text) { return sidecar_log().find(text) != std::string::npos; }

  std::unique_ptr<CallLoop> loop_;
};

TEST_F(MeshApiTroubleTest, DownKeepsTheLastMapAndRelistsWithBackoff) {
  const uint64_t failures_before = counter("h2mesh_mesh_api_failures_total", "services");
  const uint64_t lists_before = counter("h2mesh_mesh_api_lists_total", "endpointslices");
  const auto down = Clock::now();
  api().control("POST", "/down", R"({"down":true})");
  ASSERT_TRUE(eventually(
      [&] { return counter("h2mesh_mesh_api_failures_total", "services") >= failures_before + 3; },
      kWait))
      << sidecar_log();
  // Retries back off (doubling from 500 ms, each at least half its step): a watcher retrying in a
  // loop would have failed hundreds of times by now. The bound only grows with the time waited.
  const uint64_t failed = counter("h2mesh_mesh_api_failures_total", "services") - failures_before;
  const double waited_ms = static_cast<double>(ms(Clock::now() - down));
  EXPECT_LE(static_cast<double>(failed), 2 + std::log2(1 + waited_ms / 250))
      << "retries in " << waited_ms << " ms";
  EXPECT_TRUE(logged("kubernetes: cannot connect to the API server " + api().url()))
      << sidecar_log();
  ASSERT_NO_FATAL_FAILURE(expect_calls_keep_working(down));

  // Meanwhile the cluster moved on and etcd compacted: the sidecar must list again.
  api().control("POST", "/expire", R"({"mode":"http"})");
  api().control("POST", "/down", R"({"down":false})");
  ASSERT_TRUE(eventually(
      [&] { return counter("h2mesh_mesh_api_lists_total", "endpointslices") > lists_before; },
      kWait))
      << sidecar_log();
  EXPECT_GE(counter("h2mesh_mesh_api_relists_total", "endpointslices"), 1u);
  EXPECT_TRUE(logged("works again")) << sidecar_log();
  expect_changes_followed();
}

TEST_F(MeshApiTroubleTest, SlowApiServerIsWaitedForWhileCallsGoOn) {
  const uint64_t watches_before = counter("h2mesh_mesh_api_watches_total", "endpointslices");
  api().control("POST", "/delay", R"({"seconds":2})");
  const auto slow = Clock::now();
  api().control("POST", "/drop-watches");  // the re-watches are answered 2 s late
  ASSERT_NO_FATAL_FAILURE(expect_calls_keep_working(slow));
  ASSERT_TRUE(eventually(
      [&] { return counter("h2mesh_mesh_api_watches_total", "endpointslices") > watches_before; },
      kWait))
      << sidecar_log();
  EXPECT_GE(counter("h2mesh_mesh_api_failures_total", "endpointslices"), 1u);  // the cut watch
  EXPECT_TRUE(logged("was cut")) << sidecar_log();
  expect_changes_followed();
}

TEST_F(MeshApiTroubleTest, GarbageKeepsTheLastMapAndRelists) {
  const uint64_t relists_before = counter("h2mesh_mesh_api_relists_total", "services") +
                                  counter("h2mesh_mesh_api_relists_total", "endpointslices");
  const uint64_t lists_before = counter("h2mesh_mesh_api_lists_total", "services") +
                                counter("h2mesh_mesh_api_lists_total", "endpointslices");
  const auto garbage = Clock::now();
  // An unreadable line on both watches, and the first re-list is not JSON either.
  api().control("POST", "/garbage", R"({"lists":1})");
  api().control("POST", "/garbage", R"({"watch":true})");
  ASSERT_TRUE(eventually(
      [&] {
        return counter("h2mesh_mesh_api_lists_total", "services") +
                   counter("h2mesh_mesh_api_lists_total", "endpointslices") >=
               lists_before + 2;
      },
      kWait))
      << sidecar_log();
  EXPECT_EQ(counter("h2mesh_mesh_api_relists_total", "services") +
                counter("h2mesh_mesh_api_relists_total", "endpointslices"),
            relists_before + 2);
  EXPECT_GE(counter("h2mesh_mesh_api_failures_total", "services") +
                counter("h2mesh_mesh_api_failures_total", "endpointslices"),
            3u);  // two bad events, one bad list
  EXPECT_TRUE(logged("bad watch event")) << sidecar_log();
  ASSERT_NO_FATAL_FAILURE(expect_calls_keep_working(garbage));
  expect_changes_followed();
}

TEST_F(MeshApiTroubleTest, GoneOnTheWatchRelistsAndKeepsTheMap) {
  const auto gone = Clock::now();
  api().control("POST", "/expire", R"({"mode":"event"})");  // ERROR 410 on the open watches
  ASSERT_TRUE(eventually(
      [&] {
        return counter("h2mesh_mesh_api_relists_total", "services") >= 1 &&
               counter("h2mesh_mesh_api_relists_total", "endpointslices") >= 1 &&
               counter("h2mesh_mesh_api_watches_total", "services") >= 2 &&
               counter("h2mesh_mesh_api_watches_total", "endpointslices") >= 2;
      },
      kWait))
      << sidecar_log();
  api().control("POST", "/expire", R"({"mode":"http"})");  // the next watches get HTTP 410
  ASSERT_TRUE(eventually(
      [&] {
        return counter("h2mesh_mesh_api_relists_total", "services") >= 2 &&
               counter("h2mesh_mesh_api_relists_total", "endpointslices") >= 2;
      },
      kWait))
      << sidecar_log();
  EXPECT_TRUE(logged("is too old (410")) << sidecar_log();
  ASSERT_NO_FATAL_FAILURE(expect_calls_keep_working(gone));
  expect_changes_followed();
}

}  // namespace
}  // namespace h2mesh_test::mesh
