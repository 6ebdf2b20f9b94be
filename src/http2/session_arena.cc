#include "http2/session_arena.h"

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <vector>

namespace h2mesh::http2 {
namespace {

constexpr size_t kMaxArenas = size_t{1} << 18;  // 8 GiB of address space, 262,144 sessions
constexpr size_t kMaxBlocks = 8;
constexpr size_t kLargeBlock = 8 * 1024;
constexpr size_t kAlign = 16;

struct Meta {
  uint32_t live;    // blocks not yet freed
  uint32_t blocks;  // blocks placed
  uint32_t low;     // end of the blocks placed from the start
  uint32_t high;    // start of the blocks placed from the end
  bool large_placed;
  struct {
    uint32_t offset;
    uint32_t size;
  } block[kMaxBlocks];
};

struct Space {
  char* base = nullptr;
  Meta* meta = nullptr;
  std::atomic<size_t> next{0};
  std::atomic<size_t> live{0};

  Space() {
    void* b = mmap(nullptr, kMaxArenas * SessionArena::kArenaBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void* m = mmap(nullptr, kMaxArenas * sizeof(Meta), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b == MAP_FAILED || m == MAP_FAILED) {  // no arenas: everything goes to the fallback
      if (b != MAP_FAILED) munmap(b, kMaxArenas * SessionArena::kArenaBytes);
      if (m != MAP_FAILED) munmap(m, kMaxArenas * sizeof(Meta));
      return;
    }
    base = static_cast<char*>(b);
    meta = static_cast<Meta*>(m);
  }
};

Space& space() {
  static Space s;  // never unmapped: blocks may be freed during static destruction
  return s;
}

// Per thread: the arena of the session being created, and released arenas to reuse.
struct ThreadState {
  size_t current = SIZE_MAX;
  int depth = 0;
  std::vector<size_t> free_arenas;
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
  if (!t_state.free_arenas.empty()) {
    idx = t_state.free_arenas.back();
    t_state.free_arenas.pop_back();
  } else {
    idx = s.next.fetch_add(1, std::memory_order_relaxed);
    if (idx >= kMaxArenas) return SIZE_MAX;
  }
  s.meta[idx] = Meta{0, 0, 0, static_cast<uint32_t>(SessionArena::kArenaBytes), false, {}};
  s.live.fetch_add(1, std::memory_order_relaxed);
  return idx;
}

void give_back(size_t idx) {
  Space& s = space();
  madvise(s.base + idx * SessionArena::kArenaBytes, SessionArena::kArenaBytes, MADV_DONTNEED);
  s.live.fetch_sub(1, std::memory_order_relaxed);
  t_state.free_arenas.push_back(idx);
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

void* SessionArena::allocate(size_t n, bool zeroed) {
  (void)zeroed;  // the arena's pages are new: they read as zero
  size_t idx = t_state.current;
  if (idx == SIZE_MAX || n < kMinBlock) return nullptr;
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
