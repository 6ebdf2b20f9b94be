#pragma once

// Latency and count distributions, recorded by one worker without atomics or locks (like the
// counters of proxy/stats.h) and added up on the admin thread from the workers' copies.
//
// Buckets are fixed and the same for every histogram of a kind, so that copies add up bucket by
// bucket: 10 per decade (upper bounds 1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.4, 8 times a power of
// ten; each about 25% wider than the last), from the kind's first bound up, plus an overflow
// bucket. Percentiles are read by interpolating inside a bucket, so they are good to about a
// quarter of a bucket's width; /metrics shows a subset of the bounds (the 1, 2.5, 5 series), as
// Prometheus users expect.
//
// The buckets are allocated on the first record: a histogram nobody recorded into costs one
// empty vector.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace h2mesh {

class Histogram {
 public:
  static constexpr size_t kPerDecade = 10;

  // `first_bound`: the upper bound of the first bucket (values up to it land there);
  // `decades`: how many decades the buckets cover. Values above the last bound land in the
  // overflow bucket.
  constexpr Histogram(uint64_t first_bound, size_t decades)
      : first_bound_(first_bound), decades_(decades) {}

  void record(uint64_t value) { record_in(bucket_of(value), value); }

  // The bucket `value` lands in. With record_in(), a value recorded into several histograms of
  // the same kind (a call's duration: its listener's, cluster's and endpoint's) is looked up
  // once: the search is most of a record's cost.
  size_t bucket_of(uint64_t value) const;
  // `bucket` is bucket_of(value) of a histogram of the same kind.
  void record_in(size_t bucket, uint64_t value) {
    if (counts_.empty()) counts_.assign(bucket_count(), 0);
    counts_[bucket]++;
    count_++;
    sum_ += value;
  }

  void add(const Histogram& o) {
    if (o.counts_.empty()) return;
    if (counts_.empty()) counts_.assign(bucket_count(), 0);
    const size_t n = std::min(counts_.size(), o.counts_.size());
    for (size_t i = 0; i < n; ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    sum_ += o.sum_;
  }

  uint64_t count() const { return count_; }
  uint64_t sum() const { return sum_; }
  // Buckets, the overflow last; counts per bucket (not cumulative). All zero before a record.
  size_t bucket_count() const { return decades_ * kPerDecade + 1; }
  uint64_t bucket(size_t i) const { return counts_.empty() ? 0 : counts_[i]; }
  // Upper bound of bucket i (the overflow bucket's is UINT64_MAX).
  uint64_t upper_bound(size_t i) const;
  // Values up to `bound` (which should be one of the bounds; otherwise the bucket holding it
  // counts in full).
  uint64_t count_at_most(uint64_t bound) const;
  // The q-quantile (0 < q <= 1), interpolated linearly inside its bucket; 0 when empty. A
  // quantile in the overflow bucket is reported as the last bound.
  double quantile(double q) const;

  // The difference from an earlier copy of the same histogram (for rates over a window).
  Histogram since(const Histogram& earlier) const;

 private:
  uint64_t first_bound_;
  size_t decades_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
};

// Call and attempt durations in microseconds: 10 us to 100 s.
inline Histogram duration_histogram() { return Histogram(10, 7); }

}  // namespace h2mesh
