#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "observe/otlp_encoder.h"
#include "observe/otlp_http.h"
#include "observe/trace_observer.h"

namespace h2mesh::observe {
namespace {

// protoc's own decoder, independent of the encoder: field numbers and values as text.
std::string decode_raw(const std::string& bytes) {
  char path[] = "/tmp/h2mesh-otlp-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  FILE* f = fdopen(fd, "wb");
  fwrite(bytes.data(), 1, bytes.size(), f);
  fclose(f);
  std::string cmd = std::string("protoc --decode_raw < ") + path + " 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    pclose(p);
  }
  std::remove(path);
  return out;
}

proxy::CallEvent sample_call() {
  proxy::CallEvent c;
  c.listener = "ingress";
  c.authority = "greeter.default:50051";
  c.service = "helloworld.Greeter";
  c.method = "SayHello";
  c.grpc_status = 14;
  c.cluster = "greeter";
  c.upstream = "[::1]:7001";
  c.attempts = 2;
  c.request_bytes = 12;
  c.response_bytes = 0;
  c.trace.trace_id = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                      0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
  c.trace.span_id = {1, 1, 1, 1, 1, 1, 1, 1};
  c.trace.parent_span_id = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
  c.trace.valid = true;
  c.trace.sampled = true;
  return c;
}

const SpanAttribute* find(const SpanRecord& s, std::string_view key) {
  for (size_t i = 0; i < s.attribute_count; ++i)
    if (key == s.attributes[i].key) return &s.attributes[i];
  return nullptr;
}

TEST(SpanTest, CallSpanTakesItsAttributesFromTheCallTable) {
  SpanRecord s;
  fill_call_span(sample_call(), &s);
  EXPECT_EQ(s.name, "helloworld.Greeter/SayHello");
  EXPECT_EQ(s.kind, SpanRecord::Kind::Server);
  EXPECT_EQ(s.parent_span_id, (std::array<uint8_t, 8>{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}));
  ASSERT_TRUE(find(s, "rpc.system"));
  EXPECT_EQ(find(s, "rpc.system")->string_value, "grpc");
  EXPECT_EQ(find(s, "rpc.service")->string_value, "helloworld.Greeter");
  EXPECT_EQ(find(s, "rpc.method")->string_value, "SayHello");
  EXPECT_EQ(find(s, "rpc.grpc.status_code")->int_value, 14);
  // Addresses are split into host and port, as the conventions want them.
  EXPECT_EQ(find(s, "server.address")->string_value, "greeter.default");
  EXPECT_EQ(find(s, "server.port")->int_value, 50051);
  EXPECT_EQ(find(s, "network.peer.address")->string_value, "::1");
  EXPECT_EQ(find(s, "network.peer.port")->int_value, 7001);
  EXPECT_EQ(find(s, "h2mesh.attempts")->int_value, 2);
  EXPECT_FALSE(find(s, "duration"));
  // UNAVAILABLE is a server error in the RPC conventions.
  EXPECT_TRUE(s.error);
  EXPECT_EQ(s.status_message, "UNAVAILABLE");
}

TEST(SpanTest, ServerSpanStatusFollowsTheRpcConventions) {
  proxy::CallEvent c = sample_call();
  SpanRecord s;
  c.grpc_status = 5;  // NOT_FOUND: the caller's problem, not the server's
  fill_call_span(c, &s);
  EXPECT_FALSE(s.error);
  s.clear();
  c.grpc_status = proxy::kNoGrpcStatus;  // reset without a status
  fill_call_span(c, &s);
  EXPECT_TRUE(s.error);
  EXPECT_FALSE(find(s, "rpc.grpc.status_code"));
}

TEST(SpanTest, AttemptSpanIsAClientChildOfTheCallSpan) {
  proxy::CallEvent c = sample_call();
  proxy::AttemptEvent a;
  a.number = 1;
  a.upstream = "127.0.0.1:7001";
  a.grpc_status = 5;  // any non-OK status is a client error
  a.span_id = {2, 2, 2, 2, 2, 2, 2, 2};
  SpanRecord s;
  fill_attempt_span(c, a, &s);
  EXPECT_EQ(s.kind, SpanRecord::Kind::Client);
  EXPECT_EQ(s.span_id, a.span_id);
  EXPECT_EQ(s.parent_span_id, c.trace.span_id);
  EXPECT_EQ(s.trace_id, c.trace.trace_id);
  EXPECT_TRUE(s.error);
  EXPECT_EQ(find(s, "network.peer.address")->string_value, "127.0.0.1");
  EXPECT_EQ(find(s, "h2mesh.attempt")->int_value, 1);
}

// The caller's tracestate goes on both spans, and into the request as Span.trace_state (field 3);
// a span without one sends no field.
TEST(SpanTest, CallersTracestateIsOnBothSpansAndEncodedAsField3) {
  proxy::CallEvent c = sample_call();
  c.trace.tracestate = "vendor=opaque,other=1";
  proxy::AttemptEvent a;
  a.number = 1;
  a.span_id = {2, 2, 2, 2, 2, 2, 2, 2};
  SpanRecord server, client, plain;
  fill_call_span(c, &server);
  fill_attempt_span(c, a, &client);
  EXPECT_EQ(server.trace_state, "vendor=opaque,other=1");
  EXPECT_EQ(client.trace_state, "vendor=opaque,other=1");
  c.trace.tracestate = {};
  fill_call_span(c, &plain);
  std::string body;
  encode_export_request({}, "", {&server, &plain}, &body);
  const std::string text = decode_raw(body);
  size_t states = 0;
  for (size_t p = 0; (p = text.find("      3: \"vendor=opaque,other=1\"\n", p)) != std::string::npos; ++p)
    ++states;
  EXPECT_EQ(states, 1u) << text;
  EXPECT_EQ(text.find("Failed"), std::string::npos);
}

TEST(OtlpEncoderTest, ProtocDecodesTheRequest) {
  SpanRecord server;
  server.trace_id = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                     0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
  server.span_id = {1, 2, 3, 4, 5, 6, 7, 8};
  server.kind = SpanRecord::Kind::Server;
  server.name = "helloworld.Greeter/SayHello";
  server.start_unix_nanos = 1700000000000000000ULL;
  server.end_unix_nanos = 1700000000000001000ULL;
  server.add("rpc.system", std::string_view("grpc"));
  server.add("rpc.grpc.status_code", int64_t{14});
  server.error = true;
  server.status_message = "UNAVAILABLE";
  ResourceAttributes resource;
  resource.values.emplace_back("service.name", "h2mesh");
  std::string body;
  encode_export_request(resource, "0.1.0", {&server}, &body);
  const std::string expected =
      "1 {\n"
      "  1 {\n"
      "    1 {\n"
      "      1: \"service.name\"\n"
      "      2 {\n"
      "        1: \"h2mesh\"\n"
      "      }\n"
      "    }\n"
      "  }\n"
      "  2 {\n"
      "    1 {\n"
      "      1: \"h2mesh\"\n"
      "      2: \"0.1.0\"\n"
      "    }\n"
      "    2 {\n"
      "      1: \"K\\371/5w\\263M\\246\\243\\316\\222\\235\\016\\016G6\"\n"
      "      2: \"\\001\\002\\003\\004\\005\\006\\007\\010\"\n"
      "      5: \"helloworld.Greeter/SayHello\"\n"
      "      6: 2\n"
      "      7: 0x17979cfe362a0000\n"   // 1700000000000000000
      "      8: 0x17979cfe362a03e8\n"   // + 1000
      "      9 {\n"
      "        1: \"rpc.system\"\n"
      "        2 {\n"
      "          1: \"grpc\"\n"
      "        }\n"
      "      }\n"
      "      9 {\n"
      "        1: \"rpc.grpc.status_code\"\n"
      "        2 {\n"
      "          3: 14\n"
      "        }\n"
      "      }\n"
      "      15 {\n"
      "        2: \"UNAVAILABLE\"\n"
      "        3: 2\n"
      "      }\n"
      "    }\n"
      "  }\n"
      "}\n";
  EXPECT_EQ(decode_raw(body), expected);
}

TEST(OtlpEncoderTest, ParentIdOnlyForChildSpansAndLongBodiesKeepTheirLengths) {
  SpanRecord child;
  child.span_id = {9, 9, 9, 9, 9, 9, 9, 9};
  child.parent_span_id = {1, 1, 1, 1, 1, 1, 1, 1};
  child.kind = SpanRecord::Kind::Client;
  child.name = std::string(300, 'x');  // two-byte length varints
  std::vector<const SpanRecord*> spans(100, &child);
  std::string body;
  encode_export_request({}, "", spans, &body);
  std::string text = decode_raw(body);
  size_t parents = 0, kinds = 0;
  for (size_t p = 0; (p = text.find("      4: \"\\001\\001", p)) != std::string::npos; ++p) ++parents;
  for (size_t p = 0; (p = text.find("      6: 3\n", p)) != std::string::npos; ++p) ++kinds;
  EXPECT_EQ(parents, 100u);
  EXPECT_EQ(kinds, 100u);
  EXPECT_EQ(text.find("Failed"), std::string::npos);
}

// A fixed set of spans covering every branch of the encoder: a root and a child span, string and
// integer attributes (one negative: a ten-byte varint), an error status with and without a
// message, lengths of one and two bytes at every level of nesting.
std::string encode_fixed_spans() {
  SpanRecord server;
  server.trace_id = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                     0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
  server.span_id = {1, 2, 3, 4, 5, 6, 7, 8};
  server.kind = SpanRecord::Kind::Server;
  server.name = "helloworld.Greeter/SayHello";
  server.start_unix_nanos = 1700000000000000000ULL;
  server.end_unix_nanos = 1700000000123456789ULL;
  server.add("rpc.system", std::string_view("grpc"));
  server.add("rpc.grpc.status_code", int64_t{14});
  server.add("h2mesh.request_bytes", int64_t{-1});
  server.add("url.path", std::string(200, 'p'));
  server.add("h2mesh.note", std::string(600, 'z'));  // a long value
  server.error = true;
  server.status_message = "UNAVAILABLE";
  SpanRecord attempt = server;
  attempt.span_id = {8, 7, 6, 5, 4, 3, 2, 1};
  attempt.parent_span_id = server.span_id;
  attempt.kind = SpanRecord::Kind::Client;
  attempt.status_message.clear();
  attempt.add("h2mesh.attempt", int64_t{300});
  SpanRecord ok = attempt;
  ok.error = false;
  ok.name = std::string(130, 'n');
  ResourceAttributes resource;
  resource.values.emplace_back("service.name", "h2mesh");
  resource.values.emplace_back("k8s.pod.name", std::string(140, 'k'));
  // What a longer request left in the string is replaced.
  std::string body(10000, 'x');
  encode_export_request(resource, "0.1.0", {&server, &attempt, &ok}, &body);
  return body;
}

// Hex, with a run of 16 or more equal bytes as "(xx*N)" (the long names and values above).
std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<uint8_t>(bytes[i]);
    size_t run = 1;
    while (i + run < bytes.size() && bytes[i + run] == bytes[i]) ++run;
    const std::string byte{kHex[c >> 4], kHex[c & 0xf]};
    if (run >= 16) {
      out += "(" + byte + "*" + std::to_string(run) + ")";
      i += run;
    } else {
      out += byte;
      i += 1;
    }
  }
  return out;
}

// The bytes are pinned: the encoder was rewritten for speed (sizes first, then one write), and its
// output must stay what the first, obviously-correct encoder (append, then slide each length in
// front of its message) wrote for the same spans. A change here is a change of the wire.
TEST(OtlpEncoderTest, BytesEqualTheReferenceEncoding) {
  const std::string reference_hex =
      "0ae31a0abd010a180a0c736572766963652e6e616d6512080a0668326d6573680aa0010a0c6b38732e706f64"
      "2e6e616d65128f010a8c01(6b*140)12a0190a0f0a0668326d6573681205302e312e3012fe070a104bf92f35"
      "77b34da6a3ce929d0e0e4736120801020304050607082a1b68656c6c6f776f726c642e477265657465722f53"
      "617948656c6c6f30023900002a36fe9c97174115cd853dfe9c97174a140a0a7270632e73797374656d12060a"
      "04677270634a1a0a147270632e677270632e7374617475735f636f64651202180e4a230a1468326d6573682e"
      "726571756573745f6279746573120b18ffffffffffffffffff014ad8010a0875726c2e7061746812cb010ac8"
      "01(70*200)4aeb040a0b68326d6573682e6e6f746512db040ad804(7a*601)0f120b554e415641494c41424c"
      "4518021292080a104bf92f3577b34da6a3ce929d0e0e47361208080706050403020122080102030405060708"
      "2a1b68656c6c6f776f726c642e477265657465722f53617948656c6c6f30033900002a36fe9c97174115cd85"
      "3dfe9c97174a140a0a7270632e73797374656d12060a04677270634a1a0a147270632e677270632e73746174"
      "75735f636f64651202180e4a230a1468326d6573682e726571756573745f6279746573120b18ffffffffffff"
      "ffffff014ad8010a0875726c2e7061746812cb010ac801(70*200)4aeb040a0b68326d6573682e6e6f746512"
      "db040ad804(7a*600)4a150a0e68326d6573682e617474656d7074120318ac027a02180212f6080a104bf92f"
      "3577b34da6a3ce929d0e0e473612080807060504030201220801020304050607082a8201(6e*130)30033900"
      "002a36fe9c97174115cd853dfe9c97174a140a0a7270632e73797374656d12060a04677270634a1a0a147270"
      "632e677270632e7374617475735f636f64651202180e4a230a1468326d6573682e726571756573745f627974"
      "6573120b18ffffffffffffffffff014ad8010a0875726c2e7061746812cb010ac801(70*200)4aeb040a0b68"
      "326d6573682e6e6f746512db040ad804(7a*600)4a150a0e68326d6573682e617474656d7074120318ac02";
  const std::string body = encode_fixed_spans();
  EXPECT_EQ(hex(body), reference_hex);
  EXPECT_EQ(decode_raw(body).find("Failed"), std::string::npos);
}

TEST(OtlpHttpTest, ResponseHeadGivesStatusRetryAfterAndHowTheBodyEnds) {
  ResponseHead h;
  ASSERT_TRUE(parse_response_head("HTTP/1.1 503 Service Unavailable\r\nretry-after: 3\r\n\r\n", &h));
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.retry_after, std::chrono::seconds(3));
  EXPECT_FALSE(h.close);
  EXPECT_FALSE(h.content_length.has_value());
  ASSERT_TRUE(parse_response_head(
      "HTTP/1.1 200 OK\r\nContent-Length:  12 \r\nConnection: keep-alive\r\n\r\n", &h));
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.retry_after.count(), 0);
  EXPECT_EQ(h.content_length, 12u);
  EXPECT_FALSE(h.close);
  ASSERT_TRUE(parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n"
                                  "Connection: Close\r\n\r\n", &h));
  EXPECT_TRUE(h.chunked);
  EXPECT_TRUE(h.close);
  // HTTP/1.0 closes unless it says keep-alive.
  ASSERT_TRUE(parse_response_head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &h));
  EXPECT_TRUE(h.close);
  ASSERT_TRUE(parse_response_head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", &h));
  EXPECT_FALSE(h.close);
  // A length that is not a number, or two that disagree: the body's end is unknown.
  ASSERT_TRUE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", &h));
  EXPECT_TRUE(h.close);
  ASSERT_TRUE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &h));
  EXPECT_TRUE(h.close);
  // A Retry-After date is not seconds: ignored.
  ASSERT_TRUE(parse_response_head("HTTP/1.1 429 X\r\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n\r\n", &h));
  EXPECT_EQ(h.retry_after.count(), 0);
  EXPECT_FALSE(parse_response_head("SSH-2.0-OpenSSH\r\n", &h));
}

TEST(OtlpHttpTest, ChunkedBodyEndIsFoundOnlyWhenComplete) {
  const std::string whole = "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
  EXPECT_EQ(chunked_body_size(whole), whole.size());
  EXPECT_EQ(chunked_body_size(whole + "HTTP/1.1 200"), whole.size()) << "what follows is not its";
  for (size_t cut = 0; cut < whole.size(); ++cut)
    EXPECT_EQ(chunked_body_size(whole.substr(0, cut)), 0u) << cut;
  EXPECT_EQ(chunked_body_size("0\r\n\r\n"), 5u);
  EXPECT_EQ(chunked_body_size("zz\r\n"), std::nullopt);
  EXPECT_EQ(chunked_body_size("\r\n"), std::nullopt);
  EXPECT_EQ(chunked_body_size("3\r\nabcXY"), std::nullopt) << "no CRLF after the data";
  EXPECT_EQ(chunked_body_size("123456789\r\n"), std::nullopt) << "over 8 hex digits";
  EXPECT_EQ(chunked_body_size(std::string(2000, '1')), std::nullopt) << "a size line without end";
}

}  // namespace
}  // namespace h2mesh::observe
