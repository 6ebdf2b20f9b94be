#include "common/histogram.h"

#include <limits>

namespace h2mesh {
namespace {

// Upper bounds within a decade, in tenths of the decade's base (so 1.25 is 12.5 -> stored x10).
constexpr uint64_t kSteps[Histogram::kPerDecade] = {100, 125, 160, 200, 250, 320, 400, 500, 640, 800};

}  // namespace

uint64_t Histogram::upper_bound(size_t i) const {
  if (i + 1 >= bucket_count()) return std::numeric_limits<uint64_t>::max();
  uint64_t base = first_bound_;
  for (size_t d = 0; d < i / kPerDecade; ++d) base *= 10;
  return base * kSteps[i % kPerDecade] / 100;
}

size_t Histogram::bucket_of(uint64_t value) const {
  // It runs several times per call: no division. The decade first (its last bound is 8 times
  // its base), then the step, comparing value x 100 with the bounds x 100 (for an integer value
  // the same test as against the bounds truncated, as upper_bound() gives them).
  uint64_t base = first_bound_;
  size_t d = 0;
  while (value > base * 8) {
    if (++d == decades_) return bucket_count() - 1;
    base *= 10;
  }
  const uint64_t scaled = value * 100;
  size_t s = 0;
  while (scaled > base * kSteps[s]) ++s;
  return d * kPerDecade + s;
}

uint64_t Histogram::count_at_most(uint64_t bound) const {
  if (counts_.empty()) return 0;
  uint64_t n = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    n += counts_[i];
    if (upper_bound(i) >= bound) break;
  }
  return n;
}

double Histogram::quantile(double q) const {
  if (count_ == 0) return 0;
  if (q <= 0) q = 0;
  if (q > 1) q = 1;
  const double rank = q * static_cast<double>(count_);
  uint64_t below = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] == 0) continue;
    if (static_cast<double>(below + counts_[i]) >= rank) {
      if (i + 1 == counts_.size()) return static_cast<double>(upper_bound(i - 1));
      const double lo = i == 0 ? 0 : static_cast<double>(upper_bound(i - 1));
      const double hi = static_cast<double>(upper_bound(i));
      const double inside = (rank - static_cast<double>(below)) / static_cast<double>(counts_[i]);
      return lo + (hi - lo) * inside;
    }
    below += counts_[i];
  }
  return static_cast<double>(upper_bound(bucket_count() - 2));
}

Histogram Histogram::since(const Histogram& earlier) const {
  Histogram d(first_bound_, decades_);
  if (counts_.empty()) return d;
  d.counts_ = counts_;
  if (!earlier.counts_.empty()) {
    const size_t n = std::min(d.counts_.size(), earlier.counts_.size());
    for (size_t i = 0; i < n; ++i) d.counts_[i] -= std::min(d.counts_[i], earlier.counts_[i]);
  }
  d.count_ = count_ - std::min(count_, earlier.count_);
  d.sum_ = sum_ - std::min(sum_, earlier.sum_);
  return d;
}

}  // namespace h2mesh
