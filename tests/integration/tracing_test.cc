// Distributed tracing end to end: a real h2mesh between a gRPC client and a backend that
// answers with the trace context it received (tests/fakes/trace_backend.py), exporting to a test
// OTLP/HTTP receiver that decodes the spans with the OpenTelemetry protobuf definitions
// (tests/fakes/otlp_receiver.py). H2MESH_PRINT_TRACE=1 prints one exported trace as decoded.

#include <csignal>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "harness.h"

namespace h2mesh_test {
namespace {

constexpr const char* kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr const char* kCaller = "00f067aa0ba902b7";

struct Helper {
  std::unique_ptr<Subprocess> process;
  uint16_t port = 0;
};

Helper start_python(const std::string& dir, const std::string& name,
                    const std::vector<std::string>& args) {
  Helper h;
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   std::string(H2MESH_SOURCE_DIR) + "/tests/fakes/" + name + ".py"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Subprocess::spawn(argv, dir, name);
  EXPECT_TRUE(p.ok());
  if (!p.ok()) return h;
  h.process = std::move(*p);
  auto line = h.process->wait_for_line(
      Subprocess::Stream::Stdout,
      [](const std::string& l) { return l.find(" listening on ") != std::string::npos; },
      kStartTimeout);
  static const std::regex port_re(R"(:(\d+)\s*$)");
  std::smatch m;
  EXPECT_TRUE(line && std::regex_search(*line, m, port_re))
      << name << " did not start: " << h.process->read_all(Subprocess::Stream::Stderr);
  if (line && std::regex_search(*line, m, port_re)) h.port = static_cast<uint16_t>(std::stoi(m[1]));
  return h;
}

// One decoded span (a JSON line of the receiver), with the few fields the checks read.
struct Span {
  std::string json, trace_id, span_id, parent_span_id, kind, status;
};

std::string field(const std::string& json, const std::string& key) {
  std::regex re("\"" + key + "\": \"([^\"]*)\"");
  std::smatch m;
  return std::regex_search(json, m, re) ? std::string(m[1]) : std::string();
}

uint64_t number(const std::string& json, const std::string& key) {
  std::regex re("\"" + key + "\": (\\d+)");
  std::smatch m;
  return std::regex_search(json, m, re) ? std::stoull(m[1]) : 0;
}

std::vector<Span> read_spans(const std::string& path) {
  std::vector<Span> spans;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    Span s;
    s.json = line;
    s.trace_id = field(line, "trace_id");
    s.span_id = field(line, "span_id");
    s.parent_span_id = field(line, "parent_span_id");
    s.kind = field(line, "kind");
    s.status = field(line, "code");
    spans.push_back(s);
  }
  return spans;
}

std::vector<Span> spans_of(const std::string& path, const std::string& trace) {
  std::vector<Span> out;
  for (auto& s : read_spans(path))
    if (s.trace_id == trace) out.push_back(s);
  return out;
}

// "traceparent=...;tracestate=..." from the backend's reply.
struct Received {
  std::string traceparent, tracestate;
};

struct CallResult {
  grpc::Status status;
  Received received;
};

CallResult call(helloworld::Greeter::Stub& stub, const std::vector<std::pair<std::string, std::string>>& md) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  for (const auto& [k, v] : md) ctx.AddMetadata(k, v);
  helloworld::HelloRequest req;
  req.set_name("trace");
  helloworld::HelloReply reply;
  CallResult r;
  r.status = stub.SayHello(&ctx, req, &reply);
  static const std::regex re("^traceparent=([^;]*);tracestate=(.*)$");
  std::smatch m;
  const std::string& msg = reply.message();
  if (std::regex_search(msg, m, re)) r.received = {m[1], m[2]};
  return r;
}

class TracingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir();
    spans_path_ = dir_ + "/spans.jsonl";
    backend_ = start_python(dir_, "trace_backend", {});
  }

  Helper start_receiver(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--out", spans_path_};
    args.insert(args.end(), extra.begin(), extra.end());
    return start_python(dir_, "otlp_receiver", args);
  }

  // h2mesh with one worker (its spans arrive in call order) exporting to `port`.
  Proxy start(uint16_t otlp_port, const std::string& extra_tracing = "") {
    std::string tracing = "tracing:\n  otlp_endpoint: \"http://127.0.0.1:" + std::to_string(otlp_port) +
                          "/v1/traces\"\n  service_name: trace-test\n" +
                          (extra_tracing.find("batch_interval") == std::string::npos
                               ? "  batch_interval: 20ms\n" : "") +
                          extra_tracing;
    return start_proxy(dir_, simple_config({"127.0.0.1:" + std::to_string(backend_.port)},
                                           "round_robin", 1, "", otlp_port ? tracing : ""));
  }

  std::string dir_, spans_path_;
  Helper backend_;
};

TEST_F(TracingTest, SpansLinkToTheCallersTraceAndTheBackendSeesTheAttemptAsParent) {
  Helper receiver = start_receiver();
  Proxy proxy = start(receiver.port);
  auto stub = helloworld::Greeter::NewStub(make_channel(proxy.target()));
  CallResult r = call(*stub, {{"traceparent", std::string("00-") + kTrace + "-" + kCaller + "-01"},
                              {"tracestate", "vendor=opaque,other=1"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  // The backend: same trace, a new parent (h2mesh's attempt span), sampled, tracestate untouched.
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.received.traceparent, m,
                               std::regex("00-([0-9a-f]{32})-([0-9a-f]{16})-01")))
      << r.received.traceparent;
  EXPECT_EQ(m[1], kTrace);
  const std::string attempt_span = m[2];
  EXPECT_NE(attempt_span, kCaller);
  EXPECT_EQ(r.received.tracestate, "vendor=opaque,other=1");

  std::vector<Span> spans;
  ASSERT_TRUE(eventually([&] { return (spans = spans_of(spans_path_, kTrace)).size() >= 2; },
                         std::chrono::seconds(10)));
  ASSERT_EQ(spans.size(), 2u);
  const Span* server = nullptr;
  const Span* client = nullptr;
  for (const Span& s : spans) (s.kind == "SPAN_KIND_SERVER" ? server : client) = &s;
  ASSERT_TRUE(server && client);
  EXPECT_EQ(client->kind, "SPAN_KIND_CLIENT");
  EXPECT_EQ(server->parent_span_id, kCaller);           // child of the caller's span
  EXPECT_EQ(client->parent_span_id, server->span_id);   // the attempt, child of the call
  EXPECT_EQ(client->span_id, attempt_span);             // what the backend saw as its parent
  // The attempt lies within the call.
  EXPECT_GE(number(client->json, "start_time_unix_nano"), number(server->json, "start_time_unix_nano"));
  EXPECT_LE(number(client->json, "end_time_unix_nano"), number(server->json, "end_time_unix_nano"));
  EXPECT_LT(number(server->json, "start_time_unix_nano"), number(server->json, "end_time_unix_nano"));
  for (const Span* s : {server, client}) {
    EXPECT_NE(s->json.find("\"name\": \"helloworld.Greeter/SayHello\""), std::string::npos);
    EXPECT_NE(s->json.find("\"rpc.system\": \"grpc\""), std::string::npos);
    EXPECT_NE(s->json.find("\"rpc.grpc.status_code\": 0"), std::string::npos);
    EXPECT_NE(s->json.find("\"service.name\": \"trace-test\""), std::string::npos);
    EXPECT_EQ(s->status, "STATUS_CODE_UNSET");
    EXPECT_NE(s->json.find("\"trace_state\": \"vendor=opaque,other=1\""), std::string::npos)
        << s->json;
  }
  EXPECT_NE(server->json.find("\"server.port\": " + std::to_string(proxy.port)), std::string::npos);
  EXPECT_NE(client->json.find("\"network.peer.port\": " + std::to_string(backend_.port)),
            std::string::npos);
  if (getenv("H2MESH_PRINT_TRACE")) {
    std::cout << "one exported trace as the receiver decoded it:\n";
    for (const Span& s : spans) std::cout << s.json << "\n";
  }
  EXPECT_EQ(metric(proxy.admin_port, "h2mesh_trace_spans_total{result=\"exported\"}"), 2u);

  // More batches go over the connection the first one opened: the receiver keeps it (HTTP/1.1).
  for (uint64_t batch = 2; batch <= 4; ++batch) {
    ASSERT_TRUE(call(*stub, {}).status.ok());
    ASSERT_TRUE(eventually(
        [&] {
          return metric(proxy.admin_port, "h2mesh_trace_spans_total{result=\"exported\"}") ==
                 2 * batch;
        },
        std::chrono::seconds(10)));
  }
  // At least one request per batch (a call's two spans may leave in two).
  EXPECT_GE(metric(proxy.admin_port, "h2mesh_trace_export_requests_total{result=\"ok\"}"), 4u);
  EXPECT_EQ(metric(proxy.admin_port, "h2mesh_trace_export_connections_total"), 1u);
}

TEST_F(TracingTest, UnsampledCallsPropagateButExportNothing) {
  Helper receiver = start_receiver();
  Proxy proxy = start(receiver.port, "  sample_ratio: 1\n");
  auto stub = helloworld::Greeter::NewStub(make_channel(proxy.target()));
  const std::string unsampled = "11111111111111111111111111111111";
  CallResult r = call(*stub, {{"traceparent", "00-" + unsampled + "-" + kCaller + "-00"}});
  ASSERT_TRUE(r.status.ok());
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.received.traceparent, m,
                               std::regex("00-([0-9a-f]{32})-([0-9a-f]{16})-00")))
      << r.received.traceparent;
  EXPECT_EQ(m[1], unsampled);
  EXPECT_NE(m[2], kCaller);
  // A sampled call after it: once its spans are in, the unsampled call's would have been too
  // (one worker, one ring, in order).
  ASSERT_TRUE(call(*stub, {{"traceparent", std::string("00-") + kTrace + "-" + kCaller + "-01"}}).status.ok());
  ASSERT_TRUE(eventually([&] { return spans_of(spans_path_, kTrace).size() >= 2; },
                         std::chrono::seconds(10)));
  EXPECT_TRUE(spans_of(spans_path_, unsampled).empty());
}

TEST_F(TracingTest, InvalidTraceparentStartsANewSampledTrace) {
  Helper receiver = start_receiver();
  Proxy proxy = start(receiver.port);
  auto stub = helloworld::Greeter::NewStub(make_channel(proxy.target()));
  // Upper-case hex is invalid: a new trace, and the old tracestate does not belong to it.
  CallResult r = call(*stub, {{"traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"},
                              {"tracestate", "vendor=opaque"}});
  ASSERT_TRUE(r.status.ok());
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.received.traceparent, m,
                               std::regex("00-([0-9a-f]{32})-([0-9a-f]{16})-01")))
      << r.received.traceparent;
  const std::string trace = m[1];
  EXPECT_NE(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(r.received.tracestate, "");
  std::vector<Span> spans;
  ASSERT_TRUE(eventually([&] { return (spans = spans_of(spans_path_, trace)).size() >= 2; },
                         std::chrono::seconds(10)));
  for (const Span& s : spans) {
    EXPECT_NE(s.json.find("\"trace_state\": \"\""), std::string::npos) << s.json;
    if (s.kind == "SPAN_KIND_SERVER") {
      EXPECT_EQ(s.parent_span_id, "");  // a root span
    }
  }
}

TEST_F(TracingTest, WithoutTracingTheHeadersPassUntouched) {
  Proxy proxy = start(0);
  auto stub = helloworld::Greeter::NewStub(make_channel(proxy.target()));
  const std::string odd = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
  CallResult r = call(*stub, {{"traceparent", odd}, {"tracestate", "vendor=opaque"}});
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.received.traceparent, odd);
  EXPECT_EQ(r.received.tracestate, "vendor=opaque");
}

TEST_F(TracingTest, ReloadTurnsTracingOnAndOff) {
  Helper receiver = start_receiver();
  Proxy proxy = start(0);
  const std::string plain = simple_config({"127.0.0.1:" + std::to_string(backend_.port)}, "round_robin", 1);
  const std::string traced = simple_config(
      {"127.0.0.1:" + std::to_string(backend_.port)}, "round_robin", 1, "",
      "tracing:\n  otlp_endpoint: \"http://127.0.0.1:" + std::to_string(receiver.port) +
          "/v1/traces\"\n  batch_interval: 20ms\n");
  auto reload_to = [&](const std::string& yaml, const std::string& line) {
    std::string tmp = proxy.config_path + ".new";
    std::ofstream(tmp) << yaml;
    ASSERT_EQ(std::rename(tmp.c_str(), proxy.config_path.c_str()), 0);
    ASSERT_TRUE(proxy.process->wait_for_line(
        Subprocess::Stream::Stderr, [&](const std::string& l) { return l.find(line) != std::string::npos; },
        std::chrono::seconds(10)));
  };
  auto stub = helloworld::Greeter::NewStub(make_channel(proxy.target()));
  const std::string sent = std::string("00-") + kTrace + "-" + kCaller + "-01";
  reload_to(traced, "tracing: spans of");
  // The workers take their tracer shortly after the reload line: a call after that is traced.
  ASSERT_TRUE(eventually([&] { return call(*stub, {{"traceparent", sent}}).received.traceparent != sent; },
                         std::chrono::seconds(10)));
  ASSERT_TRUE(eventually([&] { return spans_of(spans_path_, kTrace).size() >= 2; },
                         std::chrono::seconds(10)));
  reload_to(plain, "tracing: off");
  ASSERT_TRUE(eventually([&] { return call(*stub, {{"traceparent", sent}}).received.traceparent == sent; },
                         std::chrono::seconds(10)));
}

TEST_F(TracingTest, ShutdownSendsWhatIsStillQueued) {
  Helper receiver = start_receiver();
  // A batch would wait a minute: only the shutdown's flush can send it.
  Proxy proxy = start(receiver.port, "  batch_interval: 60s\n");
  auto stub = helloworld::Greeter::NewStub(make_channel(proxy.target()));
  ASSERT_TRUE(call(*stub, {{"traceparent", std::string("00-") + kTrace + "-" + kCaller + "-01"}}).status.ok());
  stub.reset();
  proxy.process->send_signal(SIGTERM);
  ASSERT_TRUE(proxy.process->wait(std::chrono::seconds(30)).has_value());
  EXPECT_EQ(spans_of(spans_path_, kTrace).size(), 2u);
}

// A receiver that is down, refusing or slow costs spans (counted), never calls.
void expect_calls_unaffected(const Proxy& proxy, const char* counter) {
  auto stub = helloworld::Greeter::NewStub(make_channel(proxy.target()));
  for (int i = 0; i < 300; ++i) {
    CallResult r = call(*stub, {});
    ASSERT_TRUE(r.status.ok()) << "call " << i << ": " << r.status.error_message();
    ASSERT_TRUE(r.received.traceparent.ends_with("-01"));
  }
  EXPECT_TRUE(eventually(
      [&] {
        return metric(proxy.admin_port, "h2mesh_trace_spans_total{result=\"dropped\"}") > 0 &&
               metric(proxy.admin_port, counter) > 0;
      },
      std::chrono::seconds(10)));
}

TEST_F(TracingTest, ReceiverDownDoesNotAffectCalls) {
  Helper closed = start_receiver();
  const uint16_t port = closed.port;
  closed.process.reset();  // killed: connections to its port are refused
  Proxy proxy = start(port, "  queue_size: 16\n  batch_size: 16\n");
  expect_calls_unaffected(proxy, "h2mesh_trace_export_requests_total{result=\"error\"}");
}

TEST_F(TracingTest, ReceiverAnswering503DoesNotAffectCalls) {
  Helper receiver = start_receiver({"--status", "503"});
  Proxy proxy = start(receiver.port, "  queue_size: 16\n  batch_size: 16\n");
  expect_calls_unaffected(proxy, "h2mesh_trace_export_requests_total{result=\"retryable\"}");
}

TEST_F(TracingTest, SlowReceiverDoesNotAffectCalls) {
  Helper receiver = start_receiver({"--delay-ms", "3000"});
  Proxy proxy = start(receiver.port, "  queue_size: 16\n  batch_size: 16\n  export_timeout: 30s\n");
  auto stub = helloworld::Greeter::NewStub(make_channel(proxy.target()));
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(call(*stub, {}).status.ok()) << "call " << i;
  // The exporter is stuck in its first request while the calls went on: the queue overflowed.
  EXPECT_GT(metric(proxy.admin_port, "h2mesh_trace_spans_total{result=\"dropped\"}"), 0u);
}

}  // namespace
}  // namespace h2mesh_test
