#include "observe/line_ring.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace h2mesh::observe {

LineRing::LineRing(size_t capacity, int wake_fd)
    : mask_(std::bit_ceil(capacity < 64 ? size_t{64} : capacity) - 1), wake_fd_(wake_fd) {
  // Not zeroed: the pages are touched only as lines fill them.
  data_ = std::make_unique_for_overwrite<char[]>(mask_ + 1);
}

bool LineRing::push(std::string_view line) {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  const size_t size = mask_ + 1;
  if (head - tail_seen_ + line.size() > size) {
    tail_seen_ = tail_.load(std::memory_order_acquire);
    if (head - tail_seen_ + line.size() > size) {
      dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return false;
    }
  }
  const size_t at = head & mask_;
  const size_t first = std::min(line.size(), size - at);
  memcpy(data_.get() + at, line.data(), first);
  memcpy(data_.get(), line.data() + first, line.size() - first);
  const uint64_t next = head + line.size();
  head_.store(next, std::memory_order_release);
  // Judged on the producer's (possibly old) view of the consumer: at worst an early wake-up.
  if (wake_fd_ >= 0 && next - tail_seen_ > size / 2 &&
      !wake_pending_.load(std::memory_order_relaxed)) {
    wake_pending_.store(true, std::memory_order_relaxed);
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
  return true;
}

LineRing::Readable LineRing::readable() {
  const uint64_t head = head_.load(std::memory_order_acquire);
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  const size_t ready = head - tail;
  const size_t at = tail & mask_;
  const size_t first = std::min(ready, mask_ + 1 - at);
  return {std::string_view(data_.get() + at, first), std::string_view(data_.get(), ready - first)};
}

void LineRing::consume(size_t bytes) {
  tail_.store(tail_.load(std::memory_order_relaxed) + bytes, std::memory_order_release);
  wake_pending_.store(false, std::memory_order_relaxed);
}

}  // namespace h2mesh::observe
