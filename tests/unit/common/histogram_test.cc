// Histogram: its buckets and their bounds, where values land (on a bound, above the last, zero),
// interpolated quantiles, adding workers' copies and windows made with since().

#include "common/histogram.h"

#include <gtest/gtest.h>

#include <limits>

namespace h2mesh {
namespace {

TEST(Histogram, TenBucketsPerDecadeFromTheFirstBoundThenOverflow) {
  const Histogram h = duration_histogram();  // 10 us, 7 decades
  ASSERT_EQ(h.bucket_count(), 71u);
  const uint64_t first_decade[] = {10, 12, 16, 20, 25, 32, 40, 50, 64, 80};
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(h.upper_bound(i), first_decade[i]) << i;
  EXPECT_EQ(h.upper_bound(10), 100u);
  EXPECT_EQ(h.upper_bound(14), 250u);
  EXPECT_EQ(h.upper_bound(37), 50000u);
  EXPECT_EQ(h.upper_bound(69), 80000000u);  // 80 s, the last bound
  EXPECT_EQ(h.upper_bound(70), std::numeric_limits<uint64_t>::max());
  for (size_t i = 1; i < h.bucket_count(); ++i) EXPECT_LT(h.upper_bound(i - 1), h.upper_bound(i));
}

TEST(Histogram, AValueOnABoundLandsInThatBucketAndOneMoreInTheNext) {
  Histogram h = duration_histogram();
  for (size_t i = 0; i + 1 < h.bucket_count(); ++i) {
    Histogram one = duration_histogram();
    one.record(h.upper_bound(i));
    one.record(h.upper_bound(i) + 1);
    EXPECT_EQ(one.bucket(i), 1u) << "bound " << h.upper_bound(i);
    EXPECT_EQ(one.bucket(i + 1), 1u) << "bound " << h.upper_bound(i);
  }
}

TEST(Histogram, ZeroLandsInTheFirstBucketAndHugeValuesInTheOverflow) {
  Histogram h = duration_histogram();
  h.record(0);
  h.record(80000001);
  h.record(std::numeric_limits<uint64_t>::max() / 2);
  EXPECT_EQ(h.bucket(0), 1u);
  EXPECT_EQ(h.bucket(70), 2u);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.count_at_most(80000000), 1u);
}

TEST(Histogram, CountSumAndCountAtMostABound) {
  Histogram h = duration_histogram();
  for (uint64_t v : {5, 100, 100, 101, 2500, 30000}) h.record(v);
  EXPECT_EQ(h.count(), 6u);
  EXPECT_EQ(h.sum(), 32806u);
  EXPECT_EQ(h.count_at_most(10), 1u);
  EXPECT_EQ(h.count_at_most(100), 3u);
  EXPECT_EQ(h.count_at_most(125), 4u);
  EXPECT_EQ(h.count_at_most(2500), 5u);
  EXPECT_EQ(h.count_at_most(32000), 6u);
}

TEST(Histogram, EmptyHistogramReadsZeroEverywhere) {
  const Histogram h = duration_histogram();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.sum(), 0u);
  EXPECT_EQ(h.bucket(0), 0u);
  EXPECT_EQ(h.bucket(70), 0u);
  EXPECT_EQ(h.count_at_most(1000), 0u);
  EXPECT_EQ(h.quantile(0.5), 0.0);
  EXPECT_EQ(h.quantile(0.99), 0.0);
}

TEST(Histogram, QuantileInterpolatesLinearlyInsideItsBucket) {
  Histogram h = duration_histogram();
  for (int i = 0; i < 100; ++i) h.record(22);  // all in (20, 25]
  EXPECT_DOUBLE_EQ(h.quantile(0.5), 22.5);
  EXPECT_DOUBLE_EQ(h.quantile(0.2), 21.0);
  EXPECT_DOUBLE_EQ(h.quantile(1.0), 25.0);
  // The first bucket starts at 0.
  Histogram low = duration_histogram();
  for (int i = 0; i < 10; ++i) low.record(3);
  EXPECT_DOUBLE_EQ(low.quantile(0.5), 5.0);
}

TEST(Histogram, QuantileFindsTheBucketHoldingTheRank) {
  Histogram h = duration_histogram();
  // 80 calls in (800, 1000] us, 20 in (40, 50] ms (quantiles that are exact in binary).
  for (int i = 0; i < 80; ++i) h.record(900);
  for (int i = 0; i < 20; ++i) h.record(45000);
  EXPECT_DOUBLE_EQ(h.quantile(0.5), 800 + 200 * (50.0 / 80));
  EXPECT_DOUBLE_EQ(h.quantile(0.75), 987.5);
  EXPECT_DOUBLE_EQ(h.quantile(0.875), 40000 + 10000 * 0.375);
  // Out of range q is clamped.
  EXPECT_DOUBLE_EQ(h.quantile(2.0), 50000.0);
}

TEST(Histogram, QuantileInTheOverflowIsTheLastBound) {
  Histogram h = duration_histogram();
  h.record(100);
  h.record(500000000);  // 500 s
  EXPECT_DOUBLE_EQ(h.quantile(0.99), 80000000.0);
}

TEST(Histogram, AddSumsBucketsCountsAndSums) {
  Histogram a = duration_histogram(), b = duration_histogram(), empty = duration_histogram();
  a.record(100);
  a.record(2000);
  b.record(100);
  b.record(90000000);
  a.add(b);
  EXPECT_EQ(a.count(), 4u);
  EXPECT_EQ(a.sum(), 90002200u);
  EXPECT_EQ(a.bucket(10), 2u);
  EXPECT_EQ(a.bucket(70), 1u);
  a.add(empty);
  EXPECT_EQ(a.count(), 4u);
  // Into an empty one (the admin thread's total starts empty).
  Histogram total = duration_histogram();
  total.add(a);
  EXPECT_EQ(total.count(), 4u);
  EXPECT_EQ(total.count_at_most(100), 2u);
}

TEST(Histogram, SinceIsTheDifferenceFromAnEarlierCopy) {
  Histogram h = duration_histogram();
  h.record(100);
  h.record(3000);
  const Histogram earlier = h;
  h.record(3000);
  h.record(70000);
  const Histogram window = h.since(earlier);
  EXPECT_EQ(window.count(), 2u);
  EXPECT_EQ(window.sum(), 73000u);
  EXPECT_EQ(window.count_at_most(100), 0u);
  EXPECT_EQ(window.count_at_most(3200), 1u);
  EXPECT_EQ(window.count_at_most(80000), 2u);
  // Since an empty copy: everything; an empty histogram since anything: nothing.
  EXPECT_EQ(h.since(duration_histogram()).count(), 4u);
  EXPECT_EQ(duration_histogram().since(h).count(), 0u);
  // Nothing new since: all zero.
  EXPECT_EQ(h.since(h).count(), 0u);
  EXPECT_EQ(h.since(h).quantile(0.5), 0.0);
}

}  // namespace
}  // namespace h2mesh
