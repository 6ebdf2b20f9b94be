#include "common/intrusive_list.h"

#include <gtest/gtest.h>

#include <vector>

namespace h2mesh {
namespace {

struct Item {
  explicit Item(int v) : value(v) {}
  int value;
  ListNode a;  // one list per member
  ListNode b;
};

using ListA = IntrusiveList<Item, &Item::a>;
using ListB = IntrusiveList<Item, &Item::b>;

template <typename List>
std::vector<int> values(List& list) {
  std::vector<int> out;
  list.for_each([&](Item* item) { out.push_back(item->value); });
  return out;
}

TEST(IntrusiveList, NewListIsEmpty) {
  ListA list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(list.front(), nullptr);
  EXPECT_EQ(list.pop_front(), nullptr);
}

TEST(IntrusiveList, PushBackKeepsInsertionOrder) {
  Item x(1), y(2), z(3);
  ListA list;
  list.push_back(&x);
  list.push_back(&y);
  list.push_back(&z);
  EXPECT_EQ(list.size(), 3u);
  EXPECT_FALSE(list.empty());
  EXPECT_EQ(list.front(), &x);
  EXPECT_EQ(values(list), (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(x.a.linked());
  EXPECT_FALSE(x.b.linked());
}

TEST(IntrusiveList, PopFrontIsFifoAndUnlinks) {
  Item x(1), y(2);
  ListA list;
  list.push_back(&x);
  list.push_back(&y);
  EXPECT_EQ(list.pop_front(), &x);
  EXPECT_FALSE(x.a.linked());
  EXPECT_EQ(list.pop_front(), &y);
  EXPECT_EQ(list.pop_front(), nullptr);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
}

TEST(IntrusiveList, RemoveFromTheMiddleHeadAndTail) {
  Item v[5] = {Item(0), Item(1), Item(2), Item(3), Item(4)};
  ListA list;
  for (auto& i : v) list.push_back(&i);
  list.remove(&v[2]);
  EXPECT_EQ(values(list), (std::vector<int>{0, 1, 3, 4}));
  list.remove(&v[0]);
  EXPECT_EQ(values(list), (std::vector<int>{1, 3, 4}));
  list.remove(&v[4]);
  EXPECT_EQ(values(list), (std::vector<int>{1, 3}));
  EXPECT_EQ(list.size(), 2u);
  EXPECT_FALSE(v[2].a.linked());
}

TEST(IntrusiveList, RemovingAnUnlinkedItemIsANoOp) {
  Item x(1), y(2);
  ListA list;
  list.push_back(&x);
  list.remove(&y);
  list.remove(&x);
  list.remove(&x);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
}

TEST(IntrusiveList, ItemCanBeReinsertedAfterRemoval) {
  Item x(1), y(2);
  ListA list;
  list.push_back(&x);
  list.push_back(&y);
  list.remove(&x);
  list.push_back(&x);
  EXPECT_EQ(values(list), (std::vector<int>{2, 1}));
}

TEST(IntrusiveList, ItemLivesInTwoListsThroughTwoNodes) {
  Item x(1), y(2), z(3);
  ListA a;
  ListB b;
  a.push_back(&x);
  a.push_back(&y);
  b.push_back(&z);
  b.push_back(&x);
  a.remove(&x);
  EXPECT_EQ(values(a), (std::vector<int>{2}));
  EXPECT_EQ(values(b), (std::vector<int>{3, 1}));
  EXPECT_TRUE(x.b.linked());
}

TEST(IntrusiveList, ForEachMayUnlinkTheCurrentItem) {
  Item v[6] = {Item(0), Item(1), Item(2), Item(3), Item(4), Item(5)};
  ListA list;
  for (auto& i : v) list.push_back(&i);
  std::vector<int> seen;
  list.for_each([&](Item* item) {
    seen.push_back(item->value);
    if (item->value % 2 == 0) list.remove(item);
  });
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(values(list), (std::vector<int>{1, 3, 5}));
  EXPECT_EQ(list.size(), 3u);
}

TEST(IntrusiveList, ForEachMayEmptyTheList) {
  Item v[3] = {Item(0), Item(1), Item(2)};
  ListA list;
  for (auto& i : v) list.push_back(&i);
  list.for_each([&](Item* item) { list.remove(item); });
  EXPECT_TRUE(list.empty());
  for (auto& i : v) EXPECT_FALSE(i.a.linked());
}

}  // namespace
}  // namespace h2mesh
