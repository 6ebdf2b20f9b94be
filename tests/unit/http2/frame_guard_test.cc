#include "http2/frame_guard.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>

namespace h2mesh::http2 {
namespace {

using std::chrono::milliseconds;

int takes(TokenBucket& bucket, TimePoint now, int tries) {
  int n = 0;
  for (int i = 0; i < tries; ++i) n += bucket.take(now) ? 1 : 0;
  return n;
}

TEST(TokenBucket, BurstThenRefillAtTheRate) {
  const TimePoint t0{};
  TokenBucket bucket;
  bucket.configure(FrameBudget{3, 10}, t0);  // 3 at once, then one per 100 ms
  EXPECT_EQ(takes(bucket, t0, 5), 3);
  EXPECT_EQ(takes(bucket, t0 + milliseconds(99), 5), 0);
  EXPECT_EQ(takes(bucket, t0 + milliseconds(100), 5), 1);
  EXPECT_EQ(takes(bucket, t0 + milliseconds(10'000), 10), 3) << "refills stop at the burst";
}

TEST(TokenBucket, RefundsNeverRaiseItAboveItsBurst) {
  // Every stream that ends well refunds a RST_STREAM token: a long connection refunds far more
  // than the burst, and a flood after it still gets only the burst.
  const TimePoint t0{};
  TokenBucket bucket;
  bucket.configure(FrameBudget{3, 10}, t0);
  EXPECT_EQ(takes(bucket, t0, 2), 2);
  for (int i = 0; i < 1000; ++i) bucket.give_back();
  EXPECT_EQ(takes(bucket, t0, 10), 3);
  for (int i = 0; i < 1000; ++i) bucket.give_back();
  EXPECT_EQ(takes(bucket, t0 + milliseconds(5'000), 10), 3) << "refunds and refill together";
  bucket.give_back();
  EXPECT_EQ(takes(bucket, t0 + milliseconds(5'000), 10), 1) << "a refund after the burst is spent";
}

TEST(TokenBucket, DisabledBudgetNeverRefuses) {
  TokenBucket bucket;
  bucket.configure(FrameBudget{}, TimePoint{});
  for (int i = 0; i < 100; ++i) bucket.give_back();
  EXPECT_EQ(takes(bucket, TimePoint{}, 10'000), 10'000);
}

TEST(FrameScanner, ParsesEveryFieldOfAFrameHeader) {
  // Length 0x012345, type 0x9 (CONTINUATION), flags 0x4, stream 0x7fffffff with the reserved bit
  // set (ignored, RFC 9113 4.1).
  const uint8_t bytes[] = {0x01, 0x23, 0x45, 0x09, 0x04, 0xff, 0xff, 0xff, 0xff};
  const FrameHeader h = FrameScanner::parse(bytes);
  EXPECT_EQ(h.length, 0x012345u);
  EXPECT_EQ(h.type, 0x9);
  EXPECT_EQ(h.flags, 0x4);
  EXPECT_EQ(h.stream_id, 0x7fffffff);
  const uint8_t small[] = {0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03};
  const FrameHeader d = FrameScanner::parse(small);
  EXPECT_EQ(d.length, 8u);
  EXPECT_EQ(d.type, 0x0);
  EXPECT_EQ(d.flags, 0x1);
  EXPECT_EQ(d.stream_id, 3);
}

}  // namespace
}  // namespace h2mesh::http2
