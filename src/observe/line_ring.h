#pragma once

// A bounded queue of text lines from one worker to the access log's writer thread: a
// single-producer, single-consumer ring of bytes. A line goes in whole or not at all, so the
// writer always finds whole lines and the file never gets a torn one from a full queue.
//
// Producer: one worker thread (push). Consumer: one writer thread (readable, consume). The two
// positions are the only shared state; each side caches the other's to touch the other's cache
// line only when the ring looks full (producer) or empty (consumer).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace h2mesh::observe {

class LineRing {
 public:
  // `capacity` is rounded up to a power of two. `wake_fd`: an eventfd the producer writes to
  // when the ring passes half full and the consumer has not drained since (-1: none).
  explicit LineRing(size_t capacity, int wake_fd = -1);
  LineRing(const LineRing&) = delete;
  LineRing& operator=(const LineRing&) = delete;

  // Producer. Copies `line` in, or (no room: the consumer is behind) drops it and counts it.
  // Never blocks; the only system call is the rare wake-up of the consumer.
  bool push(std::string_view line);

  // Consumer. What is ready, as at most two spans (the second one after the wrap).
  struct Readable {
    std::string_view first;
    std::string_view second;
    size_t size() const { return first.size() + second.size(); }
  };
  Readable readable();
  // Consumer: the first `bytes` of readable() were written; their room is the producer's again.
  void consume(size_t bytes);

  // Any thread.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  size_t capacity() const { return mask_ + 1; }

 private:
  std::unique_ptr<char[]> data_;
  size_t mask_;
  int wake_fd_;
  // Producer's line: where the next byte goes, and the consumer's position as last seen.
  alignas(64) std::atomic<uint64_t> head_{0};
  uint64_t tail_seen_ = 0;
  std::atomic<uint64_t> dropped_{0};  // written by the producer only
  // Set by the producer when it woke the consumer, cleared by the consumer when it drained: one
  // wake-up per half ring at most, none at all while the consumer keeps up on its timer.
  std::atomic<bool> wake_pending_{false};
  // Consumer's line.
  alignas(64) std::atomic<uint64_t> tail_{0};
};

}  // namespace h2mesh::observe
