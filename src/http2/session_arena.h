#pragma once

#include <cstddef>
#include <cstdint>

namespace h2mesh::http2 {

// Memory layout for what libnghttp2 allocates when a session is created, so that an idle
// connection keeps as few pages resident as possible. nghttp2 1.52 allocates, per session: the
// session struct (~2.9 KiB, zeroed), two HPACK ring buffers (1 KiB each), the stream map
// (4 KiB, zeroed) and a 16 KiB outbound frame buffer. From malloc, the zeroing and the
// allocator's headers touch ~3 pages, plus the frame buffer's first page once SETTINGS go out.
//
// Here, every allocation made while a session is being created comes from one 32 KiB arena of
// fresh zero pages: the first block (the session struct) at the start, the first large block
// (the frame buffer) right after it, so that the frames nghttp2 writes share the struct's page,
// and the others from the end, untouched until used (zeroed memory needs no memset: the pages
// are new). An idle connection then keeps one page. Blocks are never reused within an arena; when
// the last one is freed the arena's pages go back to the kernel (MADV_DONTNEED) and the arena to
// a free list shared by all threads (taken under a lock, once per session).
//
// Arenas are carved out of one address range reserved at first use (no memory until touched),
// so telling an arena block from any other is a range check: no header, no lock. Small blocks
// (which nghttp2 writes at once), requests that do not fit, and requests outside a session's
// creation are left to the caller's other allocator.
class SessionArena {
 public:
  static constexpr size_t kArenaBytes = 32 * 1024;
  static constexpr size_t kMinBlock = 256;

  // While a Scope lives on this thread, allocate() places blocks in a fresh arena.
  class Scope {
   public:
    Scope();
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
  };

  // Null when no Scope is active or the block does not fit: the caller allocates elsewhere.
  // A block reads as zero (the arena's pages are new), so it serves calloc as it is.
  static void* allocate(size_t n);
  static bool owns(const void* p);
  // For blocks owns() says are arena blocks.
  static void release(void* p);
  static size_t block_size(const void* p);

  // Arenas in use and released, process-wide (for tests).
  static size_t live_arenas();
};

}  // namespace h2mesh::http2
