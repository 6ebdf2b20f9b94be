#pragma once

#include <cstddef>
#include <new>

namespace h2mesh {

// Per-call objects (streams, attempts) are created and deleted by the same worker thread at
// a high rate. Deriving from Pooled<T> makes `new T` / `delete` reuse blocks from a small
// free list of the calling thread instead of going to malloc each time: no lock, no atomic.
// At most kMaxCached blocks are kept per thread, so a burst does not pin memory for ever;
// they are returned to malloc when the thread exits. Under AddressSanitizer blocks are not
// reused, so use-after-free stays detectable.
template <typename T, size_t kMaxCached = 256>
class Pooled {
 public:
  static void* operator new(size_t size) {
#ifndef __SANITIZE_ADDRESS__
    FreeList* list = free_list();
    if (size == sizeof(T) && list && list->head) {
      Block* b = list->head;
      list->head = b->next;
      --list->count;
      return b;
    }
#endif
    return ::operator new(size);
  }

  static void operator delete(void* p, size_t size) {
    if (!p) return;
#ifndef __SANITIZE_ADDRESS__
    FreeList* list = free_list();
    if (size == sizeof(T) && list && list->count < kMaxCached) {
      auto* b = static_cast<Block*>(p);
      b->next = list->head;
      list->head = b;
      ++list->count;
      return;
    }
#endif
    ::operator delete(p, size);
  }

 private:
  struct Block {
    Block* next;
  };
  struct FreeList {
    Block* head = nullptr;
    size_t count = 0;
    ~FreeList() {
      while (head) {
        Block* b = head;
        head = b->next;
        ::operator delete(b, sizeof(T));
      }
      gone() = true;
    }
  };
  // Set once the thread's list is destroyed (thread exit): objects deleted later, by other
  // thread_local destructors, go straight to the global operator delete. Trivially destructible.
  static bool& gone() {
    thread_local bool flag = false;
    return flag;
  }
  static FreeList* free_list() {
    if (gone()) return nullptr;
    thread_local FreeList list;
    return &list;
  }
};

}  // namespace h2mesh
