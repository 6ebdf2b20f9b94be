#include "proxy/retry.h"

#include <algorithm>

namespace h2mesh::proxy {

void RetryBudget::advance(TimePoint now) {
  int64_t second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  Bucket& b = buckets_[static_cast<size_t>(second % kWindowSeconds)];
  if (b.second != second) b = Bucket{second, 0, 0};
}

void RetryBudget::record_call(TimePoint now) {
  advance(now);
  int64_t second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  buckets_[static_cast<size_t>(second % kWindowSeconds)].calls++;
}

bool RetryBudget::try_retry(TimePoint now, double ratio, uint32_t min_per_second) {
  advance(now);
  int64_t second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  uint64_t calls = 0, retries = 0;
  for (const Bucket& b : buckets_) {
    if (b.second > second - kWindowSeconds) {
      calls += b.calls;
      retries += b.retries;
    }
  }
  double allowed = static_cast<double>(min_per_second) * kWindowSeconds + ratio * static_cast<double>(calls);
  if (static_cast<double>(retries) + 1 > allowed) return false;
  buckets_[static_cast<size_t>(second % kWindowSeconds)].retries++;
  return true;
}

Duration retry_backoff(uint32_t retry, const config::RetryPolicy& policy, Random& random) {
  auto base = std::chrono::duration_cast<Duration>(policy.backoff_base);
  auto max = std::chrono::duration_cast<Duration>(policy.backoff_max);
  Duration cap = base;
  for (uint32_t i = 1; i < retry && cap < max; ++i) cap *= 2;
  cap = std::min(cap, max);
  return Duration(static_cast<int64_t>(static_cast<double>(cap.count()) * random.unit()));
}

}  // namespace h2mesh::proxy
