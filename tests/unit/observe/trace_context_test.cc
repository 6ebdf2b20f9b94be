#include "observe/trace_context.h"

#include <gtest/gtest.h>

#include <string>

namespace h2mesh::observe {
namespace {

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string hex(const auto& id) {
  auto h = to_hex(id);
  return std::string(h.begin(), h.end());
}

TEST(TraceparentTest, ValidVersion00IsRead) {
  auto p = parse_traceparent(kValid);
  ASSERT_TRUE(p);
  EXPECT_EQ(hex(p->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(p->parent_id), "00f067aa0ba902b7");
  EXPECT_TRUE(p->sampled());
  auto unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(unsampled);
  EXPECT_FALSE(unsampled->sampled());
}

TEST(TraceparentTest, WrongLengthsAreInvalid) {
  std::string v = kValid;
  EXPECT_FALSE(parse_traceparent(v.substr(0, 54)));
  EXPECT_FALSE(parse_traceparent(v + "-"));  // version 00 is exactly 55 characters
  EXPECT_FALSE(parse_traceparent(v + "0"));
  EXPECT_FALSE(parse_traceparent(""));
  // A trace id one digit short, the rest shifted.
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01x"));
}

TEST(TraceparentTest, UppercaseHexIsInvalid) {
  EXPECT_FALSE(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"));
  EXPECT_FALSE(parse_traceparent("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST(TraceparentTest, AllZeroIdsAreInvalid) {
  EXPECT_FALSE(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
}

TEST(TraceparentTest, VersionFfAndBadSeparatorsAreInvalid) {
  EXPECT_FALSE(parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"));
}

TEST(TraceparentTest, FutureVersionIsReadAsFarAsVersion00Goes) {
  auto p = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next");
  ASSERT_TRUE(p);
  EXPECT_EQ(hex(p->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(p->sampled());
  EXPECT_TRUE(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  // Extra fields must start with '-'.
  EXPECT_FALSE(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

TEST(TraceparentTest, FormatWritesVersion00WithOnlyTheSampledFlag) {
  auto p = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra");
  ASSERT_TRUE(p);
  char out[kTraceparentLength];
  SpanId span{1, 2, 3, 4, 5, 6, 7, 8};
  format_traceparent(p->trace_id, span, p->sampled(), out);
  EXPECT_EQ(std::string(out, sizeof(out)), "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01");
  format_traceparent(p->trace_id, span, false, out);
  EXPECT_EQ(std::string(out, sizeof(out)).substr(52), "-00");
  EXPECT_TRUE(parse_traceparent(std::string_view(out, sizeof(out))));
}

TEST(TraceSamplingTest, ContinuedTraceKeepsTheCallersIdsAndSampledFlag) {
  TraceSampler never(0.0, 1);
  CallTrace t = start_call_trace(std::string_view(kValid), never);
  EXPECT_TRUE(t.continued);
  EXPECT_TRUE(t.sampled);  // the caller's decision, not the ratio
  EXPECT_EQ(hex(t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(t.parent_span_id), "00f067aa0ba902b7");
  EXPECT_NE(t.span_id, SpanId{});
  EXPECT_NE(t.span_id, t.parent_span_id);

  TraceSampler always(1.0, 1);
  CallTrace u = start_call_trace(std::string_view("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), always);
  EXPECT_TRUE(u.continued);
  EXPECT_FALSE(u.sampled);
}

TEST(TraceSamplingTest, InvalidOrMissingTraceparentStartsANewTrace) {
  TraceSampler always(1.0, 7);
  CallTrace a = start_call_trace(std::nullopt, always);
  CallTrace b = start_call_trace(std::string_view("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), always);
  for (const CallTrace& t : {a, b}) {
    EXPECT_FALSE(t.continued);
    EXPECT_TRUE(t.sampled);
    EXPECT_NE(t.trace_id, TraceId{});
    EXPECT_EQ(t.parent_span_id, SpanId{});
  }
  EXPECT_NE(a.trace_id, b.trace_id);
}

TEST(TraceSamplingTest, NewTracesAreSampledAtTheRatio) {
  TraceSampler none(0.0, 3);
  TraceSampler some(0.25, 3);
  int sampled_none = 0, sampled_some = 0;
  for (int i = 0; i < 4000; ++i) {
    sampled_none += start_call_trace(std::nullopt, none).sampled;
    sampled_some += start_call_trace(std::nullopt, some).sampled;
  }
  EXPECT_EQ(sampled_none, 0);
  // Seeded: deterministic; a quarter within a generous margin.
  EXPECT_GT(sampled_some, 800);
  EXPECT_LT(sampled_some, 1200);
}

TEST(TraceSamplingTest, KernelSeededSamplersMakeDifferentIds) {
  TraceSampler a(1.0), b(1.0);
  EXPECT_NE(a.new_trace_id(), b.new_trace_id());
}

// What may go on a span as OTLP's trace_state (a protobuf string: UTF-8 or the receiver may
// refuse the whole batch): W3C's limit of 512 characters, printable ASCII.
TEST(TracestateTest, OnlyPrintableAsciiUpTo512CharactersGoesOnSpans) {
  EXPECT_TRUE(tracestate_ok("vendor=opaque,other=1"));
  EXPECT_TRUE(tracestate_ok(""));
  EXPECT_TRUE(tracestate_ok(std::string(512, 'a')));
  EXPECT_FALSE(tracestate_ok(std::string(513, 'a')));
  EXPECT_FALSE(tracestate_ok("vendor=\xff\xfe"));
  EXPECT_FALSE(tracestate_ok(std::string_view("a=\0b", 4)));
  EXPECT_FALSE(tracestate_ok("a=b\tc"));
}

}  // namespace
}  // namespace h2mesh::observe
