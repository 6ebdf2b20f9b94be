#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace h2mesh {

// A contiguous byte queue: append at the back, drain from the front. Storage is compacted lazily
// so draining never moves bytes more than once per refill.
class Buffer {
 public:
  const uint8_t* data() const { return bytes_.data() + head_; }
  size_t size() const { return bytes_.size() - head_; }
  bool empty() const { return size() == 0; }

  void append(const void* p, size_t n) {
    if (n == 0) return;
    compact_if_worth_it(n);
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
  }
  // Grows by n bytes and returns where to write them.
  uint8_t* extend(size_t n) {
    compact_if_worth_it(n);
    size_t old = bytes_.size();
    bytes_.resize(old + n);
    return bytes_.data() + old;
  }
  void drain(size_t n) {
    head_ += n;
    if (head_ >= bytes_.size()) clear();
  }
  void clear() {
    bytes_.clear();
    head_ = 0;
  }
  // Gives back memory of a large, now empty buffer (idle connections must stay small).
  void release_if_empty() {
    if (empty() && bytes_.capacity() > 64 * 1024) std::vector<uint8_t>().swap(bytes_);
  }

 private:
  void compact_if_worth_it(size_t incoming) {
    if (head_ > 0 && (head_ >= bytes_.size() / 2 || bytes_.size() + incoming > bytes_.capacity())) {
      std::memmove(bytes_.data(), bytes_.data() + head_, bytes_.size() - head_);
      bytes_.resize(bytes_.size() - head_);
      head_ = 0;
    }
  }

  std::vector<uint8_t> bytes_;
  size_t head_ = 0;
};

}  // namespace h2mesh
