#pragma once

#include <array>
#include <cstdint>

#include "common/random.h"
#include "common/time.h"
#include "config/config.h"

namespace h2mesh::proxy {

// Linkerd/Finagle-style retry budget over a sliding 10 s window: retries are allowed while
// retries < min_per_second × 10 + ratio × calls in the window. One per route and worker; no
// locks (the worker owns it).
class RetryBudget {
 public:
  static constexpr int kWindowSeconds = 10;

  void record_call(TimePoint now);
  // True, and counts the retry, when the budget allows one more.
  bool try_retry(TimePoint now, double ratio, uint32_t min_per_second);

 private:
  void advance(TimePoint now);
  struct Bucket {
    int64_t second = -1;
    uint32_t calls = 0;
    uint32_t retries = 0;
  };
  std::array<Bucket, kWindowSeconds> buckets_{};
};

// Exponential backoff with full jitter before retry number `retry` (1-based):
// uniform(0, min(max, base × 2^(retry-1))).
Duration retry_backoff(uint32_t retry, const config::RetryPolicy& policy, Random& random);

}  // namespace h2mesh::proxy
