#pragma once

// The bounded hand-over of finished spans from one worker to the exporter thread: a
// single-producer/single-consumer ring of SpanRecord slots, filled in place (a slot's strings
// keep their capacity, so a steady stream of spans allocates nothing). When the exporter falls
// behind the ring is full and the worker drops the span and counts it: it never waits.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "observe/otlp_encoder.h"

namespace h2mesh::observe {

class SpanRing {
 public:
  explicit SpanRing(size_t capacity) : slots_(capacity) {}
  SpanRing(const SpanRing&) = delete;
  SpanRing& operator=(const SpanRing&) = delete;

  // --- producer (the worker thread) ---
  // The slot to fill next, or null when the ring is full (the caller counts a drop).
  SpanRecord* begin_push() {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) == slots_.size()) return nullptr;
    SpanRecord* slot = &slots_[head % slots_.size()];
    slot->clear();
    return slot;
  }
  // Publishes the slot begin_push returned.
  void commit_push() { head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  // --- consumer (the exporter thread) ---
  size_t size() const {
    return head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_relaxed);
  }
  // The i-th oldest span, i < size().
  const SpanRecord& peek(size_t i) const {
    return slots_[(tail_.load(std::memory_order_relaxed) + i) % slots_.size()];
  }
  // Frees the n oldest slots for the producer.
  void pop(size_t n) { tail_.store(tail_.load(std::memory_order_relaxed) + n, std::memory_order_release); }

 private:
  std::vector<SpanRecord> slots_;
  alignas(64) std::atomic<size_t> head_{0};  // written by the producer only
  alignas(64) std::atomic<size_t> tail_{0};  // written by the consumer only
};

}  // namespace h2mesh::observe
