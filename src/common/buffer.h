#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <new>

#include "common/block_pool.h"

namespace h2mesh {

// A contiguous byte queue: append at the back, drain from the front. Live bytes are moved to
// the front only when the back has no room, so draining never moves bytes more than once per
// refill. The first kInline bytes of capacity live inside the object (SmallBuffer): a call's
// small request and response bodies cost no allocation. Heap storage comes from the thread's
// BlockPool, so the small buffer of a connection's write can be given back after every flush.
template <size_t kInline>
class BasicBuffer {
 public:
  BasicBuffer() = default;
  BasicBuffer(const BasicBuffer&) = delete;
  BasicBuffer& operator=(const BasicBuffer&) = delete;
  ~BasicBuffer() { BlockPool::release(heap_); }

  const uint8_t* data() const { return base() + head_; }
  size_t size() const { return tail_ - head_; }
  bool empty() const { return head_ == tail_; }
  size_t capacity() const { return heap_ ? heap_capacity_ : kInline; }

  void append(const void* p, size_t n) {
    if (n == 0) return;
    std::memcpy(extend(n), p, n);
  }
  // Grows by n bytes and returns where to write them.
  uint8_t* extend(size_t n) {
    if (tail_ + n > capacity()) make_room(n);
    uint8_t* p = base() + tail_;
    tail_ += n;
    return p;
  }
  void drain(size_t n) {
    head_ += n;
    if (head_ >= tail_) head_ = tail_ = 0;
  }
  void clear() { head_ = tail_ = 0; }
  // Gives back the heap storage of an empty buffer when it is small (it goes back to the pool,
  // and comes out of it as cheaply: idle connections hold none) or large (idle connections
  // must stay small); a mid-sized one is kept for the busy connection that grew it.
  void release_if_empty() {
    if (empty() && heap_ &&
        (heap_capacity_ <= BlockPool::kMaxPooled || heap_capacity_ > 64 * 1024)) {
      BlockPool::release(heap_);
      heap_ = nullptr;
      heap_capacity_ = 0;
    }
  }

 private:
  uint8_t* base() { return heap_ ? heap_ : inline_.data(); }
  const uint8_t* base() const { return heap_ ? heap_ : inline_.data(); }

  void make_room(size_t n) {
    const size_t live = size();
    if (live + n <= capacity()) {  // fits once the drained front is reclaimed
      std::memmove(base(), base() + head_, live);
    } else {
      size_t cap = std::max({live + n, 2 * capacity(), size_t{240}});
      if (cap < BlockPool::kMaxPooled && 2 * cap > BlockPool::kMaxPooled) cap = BlockPool::kMaxPooled;
      auto* bigger = static_cast<uint8_t*>(BlockPool::allocate(cap));
      if (!bigger) throw std::bad_alloc();
      if (live > 0) std::memcpy(bigger, base() + head_, live);
      BlockPool::release(heap_);
      heap_ = bigger;
      heap_capacity_ = cap;
    }
    head_ = 0;
    tail_ = live;
  }

  size_t head_ = 0;
  size_t tail_ = 0;
  uint8_t* heap_ = nullptr;
  size_t heap_capacity_ = 0;
  std::array<uint8_t, kInline> inline_;
};

using Buffer = BasicBuffer<0>;
template <size_t kInline>
using SmallBuffer = BasicBuffer<kInline>;

}  // namespace h2mesh
