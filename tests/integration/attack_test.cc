// Attacks on a real h2mesh process with hand-written frames on raw sockets: oversized and
// compressed header blocks (both directions), RFC 9113 violations libnghttp2 lets through, and
// floods of frames that cost work but carry nothing. Each test asserts the exact reaction, that
// a bystander client on the same worker keeps being served, and how much the proxy grew.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "raw_h2.h"

namespace h2mesh_test {
namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Built like h2mesh with a sanitizer, whose shadow memory and quarantine say nothing about the
// proxy's own growth: the bounds are checked in the normal build only.
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

constexpr char kHeaderLimit[] = "h2mesh_downstream_header_limit_total";
constexpr char kFloodGoaways[] = "h2mesh_downstream_flood_goaways_total";

class AttackTest : public MisbehavingClientTest {
 protected:
  // One worker, so the attacker and the bystander share an event loop. `listener_yaml` goes
  // into the listener, `cluster_yaml` into the cluster.
  void serve(const std::string& listener_yaml = "", const std::string& cluster_yaml = "",
             std::vector<std::string> endpoints_override = {}) {
    if (endpoints_override.empty()) start_backends(2);
    std::string y = "workers: 1\nadmin:\n  address: \"127.0.0.1:0\"\n";
    y += "listeners:\n  - name: grpc\n    address: \"127.0.0.1:0\"\n" + listener_yaml;
    y += "    routes:\n      - cluster: greeter\n";
    y += "clusters:\n  - name: greeter\n" + cluster_yaml + "    endpoints:\n";
    for (const auto& e : endpoints_override.empty() ? endpoints() : endpoints_override)
      y += "      - \"" + e + "\"\n";
    start(y);
    ASSERT_NE(proxy_.port, 0) << "the proxy did not start";
    rss_before_ = proc_status_kib(proxy_.process->pid(), "VmRSS");
    hwm_before_ = proc_status_kib(proxy_.process->pid(), "VmHWM");
  }

  // An attacker's connection: preface and empty SETTINGS sent, the proxy's SETTINGS read.
  Socket attacker() {
    Socket s = connect_to(proxy_.port);
    EXPECT_TRUE(s.valid());
    EXPECT_EQ(send_all(s, preface_and_settings()), preface_and_settings().size());
    return s;
  }

  // Logs the proxy's memory growth for the closing note, and bounds it.
  void report(const char* attack, const std::string& reaction, uint64_t max_growth_kib) {
    const int pid = proxy_.process->pid();
    const uint64_t hwm = proc_status_kib(pid, "VmHWM");
    const uint64_t rss = proc_status_kib(pid, "VmRSS");
    const uint64_t growth = hwm > hwm_before_ ? hwm - hwm_before_ : 0;
    std::printf("[attack] %s: %s; peak RSS %+lld KiB (VmHWM %llu KiB), RSS now %+lld KiB\n", attack,
                reaction.c_str(), static_cast<long long>(growth),
                static_cast<unsigned long long>(hwm),
                static_cast<long long>(rss) - static_cast<long long>(rss_before_));
    if (!kSanitized) {
      EXPECT_LE(growth, max_growth_kib) << attack << ": the proxy grew by " << growth << " KiB";
    }
  }

  uint64_t counter(const char* name) { return metric(proxy_.admin_port, name).value_or(0); }
  void expect_counter_at_least(const char* name, uint64_t want) {
    EXPECT_TRUE(eventually([&] { return counter(name) >= want; }, 5000ms))
        << name << " is " << counter(name) << ", wanted >= " << want;
  }

  uint64_t backend_calls() {
    uint64_t n = 0;
    for (const Backend& b : backends_) n += backend_stats(b).calls();
    return n;
  }

  uint64_t rss_before_ = 0;
  uint64_t hwm_before_ = 0;
};

// A header block of ~64 KiB on the wire that decodes to ~264 MB: one 4 KB field entered in the
// dynamic table, then referenced 64,000 times (one byte each).
std::string hpack_bomb_block() {
  std::string block = grpc_request_block();
  block += hpack_indexed_literal("x-bomb", std::string(4000, 'b'));
  for (int i = 0; i < 64000; ++i) block += hpack_indexed(62);
  return block;
}

// HEADERS + CONTINUATION frames of at most 16 KiB carrying `block`.
std::string header_frames(uint32_t stream, const std::string& block, bool end_stream) {
  constexpr size_t kMaxFrame = 16384;
  std::string out;
  for (size_t at = 0; at < block.size() || at == 0; at += kMaxFrame) {
    const bool first = at == 0;
    const bool last = at + kMaxFrame >= block.size();
    uint8_t flags = (last ? kEndHeaders : 0) | (first && end_stream ? kEndStream : 0);
    out += frame(first ? kHeaders : kContinuation, flags, stream, block.substr(at, kMaxFrame));
    if (last) break;
  }
  return out;
}

// A whole unary greeter call on `stream` from a raw connection.
std::string hello_call(uint32_t stream, const std::string& name = "raw") {
  return header_frames(stream, grpc_request_block(), false) +
         frame(kData, kEndStream, stream, hello_message(name));
}

TEST_F(AttackTest, ProxyAdvertisesItsHeaderListLimit) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Socket s = attacker();
  FrameReader r(s);
  auto settings = r.wait_for([](const Frame& f) { return f.type == kSettings && !(f.flags & kAck); });
  ASSERT_TRUE(settings.has_value());
  bool found = false;
  for (size_t at = 0; at + 6 <= settings->payload.size(); at += 6) {
    uint16_t id = static_cast<uint16_t>((static_cast<uint8_t>(settings->payload[at]) << 8) |
                                        static_cast<uint8_t>(settings->payload[at + 1]));
    if (id == 0x6) {  // SETTINGS_MAX_HEADER_LIST_SIZE
      found = true;
      EXPECT_EQ(be32(settings->payload, at + 2), 16384u);
    }
  }
  EXPECT_TRUE(found) << "no SETTINGS_MAX_HEADER_LIST_SIZE in the proxy's SETTINGS";
}

TEST_F(AttackTest, HpackBombIsRefusedWithoutReachingTheBackendOrGrowingTheProxy) {
  ASSERT_NO_FATAL_FAILURE(serve());
  const uint64_t calls_before = backend_calls();
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));  // one call, then calls in a thread

  Socket s = attacker();
  const std::string bomb = header_frames(1, hpack_bomb_block(), true);
  ASSERT_EQ(send_all(s, bomb), bomb.size());
  FrameReader r(s);
  auto answer = r.wait_for_headers(1);
  ASSERT_TRUE(answer.has_value()) << "no answer to the oversized request";
  EXPECT_TRUE(answer->end_stream);
  EXPECT_EQ(answer->find(":status"), "200");
  EXPECT_EQ(answer->find("grpc-status"), "8") << "RESOURCE_EXHAUSTED";
  EXPECT_NE(answer->find("grpc-message").value_or("").find("max_header_list_bytes"),
            std::string::npos);

  // The connection and its HPACK state are intact: a normal call on it succeeds.
  ASSERT_EQ(send_all(s, hello_call(3)), hello_call(3).size());
  auto trailers = r.wait_for([&](const Frame&) {
    for (const auto& b : r.blocks)
      if (b.stream == 3 && b.end_stream) return true;
    return false;
  });
  ASSERT_TRUE(trailers.has_value()) << "the call after the bomb got no answer";
  for (const auto& b : r.blocks) {
    if (b.stream == 3 && b.end_stream) {
      EXPECT_EQ(b.find("grpc-status"), "0");
    }
  }

  expect_counter_at_least(kHeaderLimit, 1);
  expect_bystander_unharmed(bystander);
  // Every call the backends saw is the bystander's or the good raw one.
  EXPECT_EQ(backend_calls() - calls_before,
            1 + static_cast<uint64_t>(bystander.ok() + bystander.failed()) + 1)
      << "the refused request reached a backend";
  report("hpack bomb (64 KiB on the wire, 264 MB decoded)", "grpc-status 8, connection kept", 4096);
}

TEST_F(AttackTest, TooManyFieldsAndCookieCrumbsAreRefused) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Socket s = attacker();
  std::string many = grpc_request_block();
  for (int i = 0; i < 100; ++i) many += hpack_literal("x-f" + std::to_string(i), "v");
  std::string crumbs;
  for (int i = 0; i < 120; ++i) crumbs += (i ? "; c" : "c") + std::to_string(i) + "=1";
  std::string cookie = grpc_request_block() + hpack_literal("cookie", crumbs);
  std::string out = header_frames(1, many, true) + header_frames(3, cookie, true);
  ASSERT_EQ(send_all(s, out), out.size());
  FrameReader r(s);
  for (uint32_t stream : {1u, 3u}) {
    auto answer = r.wait_for_headers(stream);
    ASSERT_TRUE(answer.has_value()) << "stream " << stream;
    EXPECT_EQ(answer->find("grpc-status"), "8") << "stream " << stream;
    EXPECT_NE(answer->find("grpc-message").value_or("").find("max_header_fields"),
              std::string::npos);
  }
  expect_counter_at_least(kHeaderLimit, 2);
  report("101 fields; 120 cookie crumbs", "grpc-status 8 each", 2048);
}

TEST_F(AttackTest, NonGrpcRequestOverTheLimitGets431) {
  ASSERT_NO_FATAL_FAILURE(serve("    max_header_list_bytes: 1KiB\n"));
  Socket s = attacker();
  std::string block = hpack_indexed(2) /* GET */ + hpack_indexed(6) + hpack_indexed(4) /* / */ +
                      hpack_literal(":authority", "x") + hpack_literal("x-big", std::string(2000, 'a'));
  std::string out = header_frames(1, block, true);
  ASSERT_EQ(send_all(s, out), out.size());
  FrameReader r(s);
  auto answer = r.wait_for_headers(1);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->find(":status"), "431");
  EXPECT_TRUE(answer->end_stream);
}

// A backend that ignores our SETTINGS_MAX_HEADER_LIST_SIZE: every request gets response headers
// carrying `response_block` (hand-encoded).
class RawBackend {
 public:
  explicit RawBackend(std::string response_block) : response_(std::move(response_block)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    ::listen(fd_, 16);
    socklen_t len = sizeof(sa);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~RawBackend() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

 private:
  void serve() {
    for (int conns = 0; conns < 16 && !stop_; ++conns) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      Socket s(c);
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &kSocketTimeout, sizeof(kSocketTimeout));
      send_all(s, frame(kSettings, 0, 0, ""));
      std::string in;
      size_t at = 24;  // after the client preface
      char buf[16384];
      for (int reads = 0; reads < 1000 && !stop_; ++reads) {
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        size_t rest = 0;
        if (in.size() < at) continue;
        auto frames = parse_frames(in.substr(at), &rest);
        at = in.size() - rest;
        for (const Frame& f : frames) {
          if (f.type == kSettings && !(f.flags & kAck)) send_all(s, frame(kSettings, kAck, 0, ""));
          if (f.type == kHeaders) {
            requests_++;
            send_all(s, header_frames(f.stream, response_, false));
          }
        }
      }
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::string response_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
};

TEST_F(AttackTest, BackendHpackBombIsRefusedAndTheCallFailsInternal) {
  // :status 200, content-type, then the 4 KB field referenced 64,000 times.
  std::string block = hpack_indexed(8) + hpack_literal("content-type", "application/grpc") +
                      hpack_indexed_literal("x-bomb", std::string(4000, 'b'));
  for (int i = 0; i < 64000; ++i) block += hpack_indexed(62);
  RawBackend backend(block);
  ASSERT_NO_FATAL_FAILURE(serve("", "    outlier_detection: { enabled: false }\n", {backend.address()}));
  auto stub = this->stub();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  helloworld::HelloRequest req;
  helloworld::HelloReply reply;
  grpc::Status st = stub->SayHello(&ctx, req, &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INTERNAL) << st.error_message();
  EXPECT_NE(st.error_message().find("max_header_list_bytes"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(backend.requests(), 1) << "a backend that did the work must not be retried";
  EXPECT_TRUE(eventually(
      [&] {
        auto [code, body] = http_get(proxy_.admin_port, "/metrics");
        return body.find("h2mesh_cluster_response_header_limit_total{cluster=\"greeter\"} 1") !=
               std::string::npos;
      },
      5000ms));
  report("backend hpack bomb (264 MB of response headers)", "call failed INTERNAL", 4096);
}

// ---- RFC 9113 where libnghttp2 is lenient ----------------------------------------------------

TEST_F(AttackTest, HeadersOnAStreamIdBelowOneAlreadyUsedIsAConnectionError) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));
  Socket s = attacker();
  std::string out = hello_call(5) + header_frames(3, grpc_request_block(), true);
  ASSERT_EQ(send_all(s, out), out.size());
  FrameReader r(s);
  EXPECT_EQ(r.goaway_code(), kProtocolError);
  EXPECT_TRUE(r.wait_closed());
  expect_bystander_unharmed(bystander);
  report("HEADERS on stream 3 after stream 5", "GOAWAY PROTOCOL_ERROR", 1024);
}

TEST_F(AttackTest, DataOnAClosedStreamGetsRstStreamClosedAndTheConnectionLives) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Socket s = attacker();
  ASSERT_EQ(send_all(s, hello_call(1)), hello_call(1).size());
  FrameReader r(s);
  // Stream 1 is closed once its trailers (END_STREAM) came back.
  ASSERT_TRUE(r.wait_for([&](const Frame& f) {
    return f.stream == 1 && (f.type == kHeaders || f.type == kData) && (f.flags & kEndStream);
  }));
  std::string late = frame(kData, 0, 1, "late");
  ASSERT_EQ(send_all(s, late), late.size());
  auto rst = r.wait_for([](const Frame& f) { return f.type == kRstStream && f.stream == 1; });
  ASSERT_TRUE(rst.has_value()) << "no RST_STREAM for DATA on a closed stream";
  EXPECT_EQ(be32(rst->payload, 0), kStreamClosed);
  // Still alive: a PING is answered and a new call works.
  std::string ping = frame(kPing, 0, 0, "12345678");
  ASSERT_EQ(send_all(s, ping), ping.size());
  EXPECT_TRUE(r.wait_for([](const Frame& f) { return f.type == kPing && (f.flags & kAck); }));
  EXPECT_FALSE(r.closed);
}

TEST_F(AttackTest, InitialWindowSizeThatOverflowsAStreamWindowIsFlowControlError) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Socket s = attacker();
  // A slow call keeps stream 1 open; its send window is raised to the maximum, then SETTINGS
  // grows every stream's window by one more byte.
  std::string block = grpc_request_block() + hpack_literal("x-delay-ms", "3000");
  std::string out = header_frames(1, block, false) + frame(kData, kEndStream, 1, hello_message("w")) +
                    frame(kWindowUpdate, 0, 1, u32(0x7fffffff - 65535)) +
                    frame(kSettings, 0, 0, settings_entry(0x4, 65536));
  ASSERT_EQ(send_all(s, out), out.size());
  FrameReader r(s);
  EXPECT_EQ(r.goaway_code(), kFlowControlError);
  EXPECT_TRUE(r.wait_closed());
}

// ---- Floods ----------------------------------------------------------------------------------

struct FloodCase {
  const char* name;
  std::string (*frames)(int i);  // the i-th frame of the flood
};

std::string empty_data(int) { return frame(kData, 0, 1, ""); }
std::string priority(int i) {
  return frame(kPriority, 0, static_cast<uint32_t>(2 * i + 101), u32(0) + std::string(1, '\x10'));
}
std::string settings(int) { return frame(kSettings, 0, 0, ""); }
std::string ping(int i) { return frame(kPing, 0, 0, u32(0) + u32(static_cast<uint32_t>(i))); }
std::string rapid_reset(int i) {
  uint32_t stream = static_cast<uint32_t>(2 * i + 1);
  return header_frames(stream, grpc_request_block(), false) +
         frame(kRstStream, 0, stream, u32(0x8 /* CANCEL */));
}

class FloodTest : public AttackTest, public ::testing::WithParamInterface<FloodCase> {};

TEST_P(FloodTest, FloodGetsEnhanceYourCalmAndOthersKeepBeingServed) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));
  Socket s = attacker();
  std::string out;
  // Empty DATA needs an open stream to land on.
  if (GetParam().frames == empty_data) out += header_frames(1, grpc_request_block(), false);
  for (int i = 0; i < 1000; ++i) out += GetParam().frames(i);
  send_all(s, out);  // the proxy may hang up before it read everything
  FrameReader r(s);
  EXPECT_EQ(r.goaway_code(), kEnhanceYourCalm) << GetParam().name;
  EXPECT_TRUE(r.wait_closed());
  expect_counter_at_least(kFloodGoaways, 1);
  expect_bystander_unharmed(bystander);
  report(GetParam().name, "GOAWAY ENHANCE_YOUR_CALM", 2048);
}

INSTANTIATE_TEST_SUITE_P(Floods, FloodTest,
                         ::testing::Values(FloodCase{"empty DATA flood", empty_data},
                                           FloodCase{"PRIORITY flood", priority},
                                           FloodCase{"SETTINGS flood", settings},
                                           FloodCase{"PING flood", ping},
                                           FloodCase{"rapid reset", rapid_reset}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST_F(AttackTest, EmptyContinuationFloodGetsEnhanceYourCalm) {
  // Below libnghttp2's own CONTINUATION cap, so that our budget is what answers.
  ASSERT_NO_FATAL_FAILURE(serve("    flood_limits: { empty_frames: { burst: 4, per_second: 1 } }\n"));
  Socket s = attacker();
  std::string out = frame(kHeaders, 0, 1, grpc_request_block());
  for (int i = 0; i < 6; ++i) out += frame(kContinuation, 0, 1, "");
  send_all(s, out);
  FrameReader r(s);
  EXPECT_EQ(r.goaway_code(), kEnhanceYourCalm);
  EXPECT_TRUE(r.wait_closed());
}

TEST_F(AttackTest, ClientThatCancelsManyOfItsCallsIsNotMistakenForRapidReset) {
  ASSERT_NO_FATAL_FAILURE(serve());
  Socket s = attacker();
  FrameReader r(s);
  // 500 calls, every other one cancelled as its answer arrives: more resets than the burst, but
  // each call that completes gives one back.
  for (uint32_t i = 0; i < 500; ++i) {
    uint32_t stream = 2 * i + 1;
    std::string out = hello_call(stream);
    ASSERT_EQ(send_all(s, out), out.size());
    ASSERT_TRUE(r.wait_for([&](const Frame& f) {
      return f.stream == stream && (f.flags & kEndStream);
    })) << "call " << i;
    if (i % 2 == 1) send_all(s, frame(kRstStream, 0, stream, u32(0x8)));
  }
  EXPECT_FALSE(r.wait_for_type(kGoaway, 200ms).has_value());
  EXPECT_FALSE(r.closed);
}

// ---- Keepalive -------------------------------------------------------------------------------

TEST_F(AttackTest, ClientThatStopsAnsweringPingsIsClosed) {
  ASSERT_NO_FATAL_FAILURE(serve("    keepalive: { interval: 300ms, timeout: 300ms }\n"));
  Bystander bystander(proxy_.target());
  ASSERT_NO_FATAL_FAILURE(start_bystander(bystander));
  Socket s = attacker();  // sends its preface, then reads but never answers anything
  FrameReader r(s);
  const auto t0 = std::chrono::steady_clock::now();
  auto ping = r.wait_for([](const Frame& f) { return f.type == kPing && !(f.flags & kAck); });
  ASSERT_TRUE(ping.has_value()) << "no keepalive PING";
  EXPECT_TRUE(r.wait_closed(5000ms)) << "a client that does not answer PINGs was kept";
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 500ms);  // interval + timeout, less the loop's timer slack
  expect_bystander_unharmed(bystander);
  report("client that never answers PINGs", "closed after keepalive interval + timeout", 1024);
}

TEST_F(AttackTest, StoppedBackendIsDetectedByKeepaliveAndNewCallsGoElsewhere) {
  ASSERT_NO_FATAL_FAILURE(serve("",
                                "    keepalive: { interval: 300ms, timeout: 300ms }\n"
                                "    connect_timeout: 300ms\n"
                                "    outlier_detection: { consecutive_failures: 1 }\n"));
  // A call that the first backend holds, then the backend is stopped (SIGSTOP).
  auto stub = this->stub();
  Backend& victim = backends_[0];
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-delay-ms", "3000");
  ctx.set_deadline(std::chrono::system_clock::now() + 8s);
  helloworld::HelloRequest req;
  helloworld::HelloReply reply;
  grpc::Status held;
  std::chrono::steady_clock::time_point held_at, held2_at;
  std::thread holder([&] {
    // Round robin: one of the first two calls lands on the victim; both are slow.
    held = stub->SayHello(&ctx, req, &reply);
    held_at = std::chrono::steady_clock::now();
  });
  grpc::ClientContext ctx2;
  ctx2.AddMetadata("x-delay-ms", "3000");
  ctx2.set_deadline(std::chrono::system_clock::now() + 8s);
  grpc::Status held2;
  helloworld::HelloReply reply2;
  std::thread holder2([&] {
    held2 = stub->SayHello(&ctx2, req, &reply2);
    held2_at = std::chrono::steady_clock::now();
  });
  ASSERT_TRUE(eventually([&] { return backend_stats(victim).calls() >= 1; }, 5000ms));
  ASSERT_EQ(::kill(victim.process->pid(), SIGSTOP), 0);
  const auto stopped = std::chrono::steady_clock::now();
  holder.join();
  holder2.join();
  // The call on the stopped backend fails once keepalive gives up (the backend may have done
  // the work: not retried); the other one is answered after its 3 s.
  const bool first_was_victim = !held.ok();
  const grpc::Status& victim_call = first_was_victim ? held : held2;
  const auto detected = (first_was_victim ? held_at : held2_at) - stopped;
  EXPECT_EQ(victim_call.error_code(), grpc::StatusCode::UNAVAILABLE) << victim_call.error_message();
  EXPECT_NE(victim_call.error_message().find("keepalive"), std::string::npos)
      << victim_call.error_message();
  EXPECT_LT(detected, 10s) << "keepalive should detect the stop within interval + timeout";
  // New calls go to the backend that still answers.
  for (int i = 0; i < 5; ++i) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + 5s);
    helloworld::HelloReply r;
    grpc::Status st = stub->SayHello(&c, req, &r);
    EXPECT_TRUE(st.ok()) << "call " << i << ": " << st.error_message();
  }
  ::kill(victim.process->pid(), SIGCONT);
  std::printf("[attack] backend SIGSTOPped with a call in flight: the call failed UNAVAILABLE "
              "after %lld ms (keepalive 300ms/300ms)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(detected).count()));
}

}  // namespace
}  // namespace h2mesh_test
