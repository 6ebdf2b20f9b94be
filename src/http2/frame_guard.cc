#include "http2/frame_guard.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace h2mesh::http2 {

void TokenBucket::configure(FrameBudget budget, TimePoint now) {
  budget_ = budget;
  tokens_ = static_cast<int64_t>(budget.burst) * kScale;
  last_ = now;
}

bool TokenBucket::take(TimePoint now) {
  if (budget_.burst == 0) return true;
  const int64_t cap = static_cast<int64_t>(budget_.burst) * kScale;
  if (now > last_) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_).count();
    if (ms > 0) {
      // per_second tokens per 1000 ms = per_second thousandths of a token per ms.
      tokens_ = std::min(cap, tokens_ + static_cast<int64_t>(budget_.per_second) * ms);
      last_ += std::chrono::milliseconds(ms);
    }
  }
  tokens_ = std::min(cap, tokens_);  // give_back() does not stop at the burst
  if (tokens_ < kScale) return false;
  tokens_ -= kScale;
  return true;
}

size_t FrameScanner::collect_header(const uint8_t* data, size_t len) {
  size_t n = std::min(len, kHeaderSize - have_);
  std::memcpy(header_.data() + have_, data, n);
  have_ += n;
  return n;
}

void FrameScanner::start_payload() {
  skip_ = header().length;
  have_ = 0;
}

void RecentResets::add(int32_t stream_id) {
  ids_[next_] = stream_id;
  next_ = (next_ + 1) % ids_.size();
}

bool RecentResets::contains(int32_t stream_id) const {
  return std::find(ids_.begin(), ids_.end(), stream_id) != ids_.end();
}

}  // namespace h2mesh::http2
