#include "http2/session_arena.h"

#include <sys/mman.h>

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace h2mesh::http2 {
namespace {

constexpr size_t kMaxArenas = size_t{1} << 18;  // 8 GiB of address space, 262,144 sessions
constexpr size_t kChunkArenas = 64;              // made accessible 2 MiB at a time
constexpr size_t kMaxBlocks = 8;
constexpr size_t kLargeBlock = 8 * 1024;
constexpr size_t kAlign = 16;
constexpr uint32_t kNone = UINT32_MAX;

struct Meta {
  uint32_t live;       // blocks not yet freed
  uint32_t blocks;     // blocks placed
  uint32_t low;        // end of the blocks placed from the start
  uint32_t high;       // start of the blocks placed from the end
  uint32_t next_free;  // free list link while the arena is unused
  bool large_placed;
  struct {
    uint32_t offset;
    uint32_t size;
  } block[kMaxBlocks];
};

// Process-wide, never destroyed (every member is trivially destructible): blocks may be freed
// during static destruction. The address range is reserved inaccessible and opened a chunk at a
// time, so that strict overcommit accounting only sees what is used; not inherited by fork()ed
// children; never backed by transparent huge pages (a 2 MiB page would make every arena in it
// resident).
struct Space {
  char* base = nullptr;
  Meta* meta = nullptr;
  std::mutex mu;          // taking and giving back arenas: once per session, never per call
  size_t opened = 0;      // arenas made accessible
  size_t next = 0;        // arenas handed out at least once
  uint32_t free_head = kNone;
  std::atomic<size_t> live{0};

  Space() {
    const size_t bytes = kMaxArenas * SessionArena::kArenaBytes;
    const size_t meta_bytes = kMaxArenas * sizeof(Meta);
    void* b = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void* m = mmap(nullptr, meta_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (b == MAP_FAILED || m == MAP_FAILED) {  // no arenas: everything goes elsewhere
      if (b != MAP_FAILED) munmap(b, bytes);
      if (m != MAP_FAILED) munmap(m, meta_bytes);
      return;
    }
    madvise(b, bytes, MADV_DONTFORK);
    madvise(b, bytes, MADV_NOHUGEPAGE);
    madvise(m, meta_bytes, MADV_DONTFORK);
    base = static_cast<char*>(b);
    meta = static_cast<Meta*>(m);
  }

  // With mu held: makes arenas [opened, opened + kChunkArenas) and their Meta usable.
  bool open_chunk() {
    if (opened + kChunkArenas > kMaxArenas) return false;
    char* arenas = base + opened * SessionArena::kArenaBytes;
    if (mprotect(arenas, kChunkArenas * SessionArena::kArenaBytes, PROT_READ | PROT_WRITE) != 0)
      return false;
    // Meta entries of the chunk, rounded out to whole pages (neighbouring chunks share pages:
    // opening a page twice is harmless).
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    auto first = reinterpret_cast<uintptr_t>(meta + opened) & ~(page - 1);
    auto last = reinterpret_cast<uintptr_t>(meta + opened + kChunkArenas);
    if (mprotect(reinterpret_cast<void*>(first), last - first, PROT_READ | PROT_WRITE) != 0)
      return false;
    opened += kChunkArenas;
    return true;
  }
};

Space& space() {
  static Space s;
  return s;
}

// Per thread, trivially destructible: the arena of the session being created.
struct ThreadState {
  size_t current = SIZE_MAX;
  int depth = 0;
};
thread_local ThreadState t_state;

size_t index_of(const void* p) {
  Space& s = space();
  return static_cast<size_t>(static_cast<const char*>(p) - s.base) / SessionArena::kArenaBytes;
}

size_t take_arena() {
  Space& s = space();
  if (!s.base) return SIZE_MAX;
  size_t idx;
  {
    std::lock_guard lock(s.mu);
    if (s.free_head != kNone) {
      idx = s.free_head;
      s.free_head = s.meta[idx].next_free;
    } else {
      if (s.next == s.opened && !s.open_chunk()) return SIZE_MAX;
      idx = s.next++;
    }
  }
  s.meta[idx] = Meta{0, 0, 0, static_cast<uint32_t>(SessionArena::kArenaBytes), kNone, false, {}};
  s.live.fetch_add(1, std::memory_order_relaxed);
  return idx;
}

void give_back(size_t idx) {
  Space& s = space();
  char* arena = s.base + idx * SessionArena::kArenaBytes;
  // Reused arenas must read as zero: calloc'ed blocks are not cleared.
  if (madvise(arena, SessionArena::kArenaBytes, MADV_DONTNEED) != 0)
    std::memset(arena, 0, SessionArena::kArenaBytes);
  s.live.fetch_sub(1, std::memory_order_relaxed);
  std::lock_guard lock(s.mu);
  s.meta[idx].next_free = s.free_head;
  s.free_head = static_cast<uint32_t>(idx);
}

size_t align_up(size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

}  // namespace

SessionArena::Scope::Scope() {
  if (t_state.depth++ == 0) t_state.current = take_arena();
}

SessionArena::Scope::~Scope() {
  if (--t_state.depth != 0) return;
  size_t idx = t_state.current;
  t_state.current = SIZE_MAX;
  if (idx != SIZE_MAX && space().meta[idx].live == 0) give_back(idx);  // nothing left in it
}

void* SessionArena::allocate(size_t n) {
  size_t idx = t_state.current;
  if (idx == SIZE_MAX || n < kMinBlock || n > kArenaBytes) return nullptr;
  Space& s = space();
  Meta& m = s.meta[idx];
  if (m.blocks == kMaxBlocks) return nullptr;
  const size_t size = align_up(n);
  size_t offset;
  if (m.blocks == 0 || (!m.large_placed && n >= kLargeBlock)) {
    // The first block at the start, the first large one right after it.
    if (m.low + size > m.high) return nullptr;
    offset = m.low;
    m.low = static_cast<uint32_t>(m.low + size);
    if (m.blocks > 0) m.large_placed = true;
  } else {
    if (m.high < m.low + size) return nullptr;
    offset = m.high - size;
    m.high = static_cast<uint32_t>(offset);
  }
  m.block[m.blocks++] = {static_cast<uint32_t>(offset), static_cast<uint32_t>(n)};
  m.live++;
  return s.base + idx * kArenaBytes + offset;
}

bool SessionArena::owns(const void* p) {
  Space& s = space();
  auto* c = static_cast<const char*>(p);
  return s.base && c >= s.base && c < s.base + kMaxArenas * kArenaBytes;
}

size_t SessionArena::block_size(const void* p) {
  Space& s = space();
  size_t idx = index_of(p);
  const Meta& m = s.meta[idx];
  auto offset = static_cast<uint32_t>(static_cast<const char*>(p) - (s.base + idx * kArenaBytes));
  for (uint32_t i = 0; i < m.blocks; ++i)
    if (m.block[i].offset == offset) return m.block[i].size;
  return 0;
}

void SessionArena::release(void* p) {
  size_t idx = index_of(p);
  Meta& m = space().meta[idx];
  if (--m.live == 0 && idx != t_state.current) give_back(idx);
}

size_t SessionArena::live_arenas() { return space().live.load(std::memory_order_relaxed); }

}  // namespace h2mesh::http2
