#pragma once

#include <cstddef>
#include <cstdint>

namespace h2mesh {

// Small-block allocator for libraries that allocate and free many small objects per call
// (libnghttp2: streams, queued frames, header buffers). Each thread has its own pool of free
// blocks in power-of-two size classes from 64 bytes to 1 KiB, so allocating is popping a list:
// no lock, no atomic. Larger requests (per-connection tables and buffers, whose rounding up
// would cost memory on every idle connection) go to malloc. A block may be freed on any thread (it joins
// that thread's pool). Each class keeps at most kMaxCachedBytes of free blocks per thread; the
// rest goes back to malloc, and a thread's pool is returned to malloc when the thread exits.
class BlockPool {
 public:
  static constexpr size_t kMaxCachedBytes = 256 * 1024;

  static void* allocate(size_t n);
  static void* allocate_zeroed(size_t count, size_t size);
  static void* reallocate(void* p, size_t n);
  static void release(void* p);
  // Free blocks cached by the calling thread, in bytes (for tests and metrics).
  static size_t cached_bytes();
  // Largest request served from the pools.
  static constexpr size_t kMaxPooled = 1024 - 16;
};

}  // namespace h2mesh
