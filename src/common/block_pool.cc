#include "common/block_pool.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>

namespace h2mesh {
namespace {

constexpr size_t kHeader = 16;  // keeps the payload 16-byte aligned, as malloc's is
constexpr size_t kMinShift = 6;  // 64-byte blocks (48 usable)
constexpr size_t kClasses = 5;   // ... up to 1 KiB blocks
constexpr uint32_t kDirect = 0xffffffff;

struct Header {
  uint32_t size_class;  // kDirect: malloc'ed on its own, `bytes` long
  uint32_t unused;
  uint64_t bytes;       // whole block, header included
};
static_assert(sizeof(Header) == kHeader);

constexpr size_t class_bytes(uint32_t c) { return size_t{1} << (kMinShift + c); }
static_assert(BlockPool::kMaxPooled + kHeader == class_bytes(kClasses - 1));

struct FreeBlock {
  FreeBlock* next;
};

struct Pool {
  FreeBlock* head[kClasses] = {};
  size_t count[kClasses] = {};
  ~Pool();
};

// Trivially destructible, so they stay readable after the pool's destructor has run at thread
// exit: from then on t_pool is null, t_pool_gone is set, and everything goes straight to malloc.
thread_local Pool* t_pool = nullptr;
thread_local bool t_pool_gone = false;

Pool* pool() {
  if (!t_pool && !t_pool_gone) {
    thread_local Pool instance;
    t_pool = &instance;
  }
  return t_pool;
}

Pool::~Pool() {
  for (size_t c = 0; c < kClasses; ++c) {
    while (head[c]) {
      FreeBlock* b = head[c];
      head[c] = b->next;
      std::free(b);
    }
  }
  t_pool = nullptr;
  t_pool_gone = true;
}

Header* header_of(void* p) { return reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader); }

size_t usable(const Header* h) {
  return (h->size_class == kDirect ? h->bytes : class_bytes(h->size_class)) - kHeader;
}

}  // namespace

void* BlockPool::allocate(size_t n) {
  const size_t total = n + kHeader;
  if (total < n) return nullptr;  // overflow
  Header* h;
  if (total > class_bytes(kClasses - 1)) {
    h = static_cast<Header*>(std::malloc(total));
    if (!h) return nullptr;
    h->size_class = kDirect;
    h->bytes = total;
  } else {
    const uint32_t c = static_cast<uint32_t>(
        std::max<int>(0, static_cast<int>(std::bit_width(total - 1)) - static_cast<int>(kMinShift)));
    Pool* p = pool();
    if (p && p->head[c]) {
      h = reinterpret_cast<Header*>(p->head[c]);
      p->head[c] = p->head[c]->next;
      p->count[c]--;
    } else {
      h = static_cast<Header*>(std::malloc(class_bytes(c)));
      if (!h) return nullptr;
    }
    h->size_class = c;
    h->bytes = class_bytes(c);
  }
  return reinterpret_cast<char*>(h) + kHeader;
}

void* BlockPool::allocate_zeroed(size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size) return nullptr;
  void* p = allocate(count * size);
  if (p) std::memset(p, 0, count * size);
  return p;
}

void BlockPool::release(void* p) {
  if (!p) return;
  Header* h = header_of(p);
  const uint32_t c = h->size_class;
  Pool* pl = t_pool;
  if (c == kDirect || !pl || (pl->count[c] + 1) * class_bytes(c) > kMaxCachedBytes) {
    std::free(h);
    return;
  }
  auto* b = reinterpret_cast<FreeBlock*>(h);
  b->next = pl->head[c];
  pl->head[c] = b;
  pl->count[c]++;
}

void* BlockPool::reallocate(void* p, size_t n) {
  if (!p) return allocate(n);
  if (n == 0) {
    release(p);
    return nullptr;
  }
  Header* h = header_of(p);
  const size_t old = usable(h);
  if (n <= old) return p;  // still fits its block
  void* q = allocate(n);
  if (!q) return nullptr;  // p stays valid, as with realloc
  std::memcpy(q, p, std::min(old, n));
  release(p);
  return q;
}

size_t BlockPool::cached_bytes() {
  Pool* p = pool();
  if (!p) return 0;
  size_t bytes = 0;
  for (size_t c = 0; c < kClasses; ++c) bytes += p->count[c] * class_bytes(c);
  return bytes;
}

}  // namespace h2mesh
