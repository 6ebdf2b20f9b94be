#pragma once

#include <cstddef>

namespace h2mesh {

// A non-owning doubly linked list whose links live inside the elements: O(1) unlink, no
// allocation. An element is in at most one list per ListNode member.
struct ListNode {
  ListNode* prev = nullptr;
  ListNode* next = nullptr;
  void* owner = nullptr;
  bool linked() const { return prev != nullptr; }
};

template <typename T, ListNode T::*Member>
class IntrusiveList {
 public:
  IntrusiveList() { head_.prev = head_.next = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const { return head_.next == &head_; }
  size_t size() const { return size_; }

  void push_back(T* item) {
    ListNode* n = &(item->*Member);
    n->owner = item;
    n->prev = head_.prev;
    n->next = &head_;
    head_.prev->next = n;
    head_.prev = n;
    ++size_;
  }
  void remove(T* item) {
    ListNode* n = &(item->*Member);
    if (!n->linked()) return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = nullptr;
    --size_;
  }
  T* front() const { return empty() ? nullptr : owner(head_.next); }
  T* pop_front() {
    T* item = front();
    if (item) remove(item);
    return item;
  }
  // Calls fn(T*) for each element; fn may unlink the element it is given.
  template <typename Fn>
  void for_each(Fn&& fn) {
    for (ListNode* n = head_.next; n != &head_;) {
      ListNode* next = n->next;
      fn(owner(n));
      n = next;
    }
  }

 private:
  static T* owner(ListNode* n) { return static_cast<T*>(n->owner); }
  ListNode head_;
  size_t size_ = 0;
};

}  // namespace h2mesh
