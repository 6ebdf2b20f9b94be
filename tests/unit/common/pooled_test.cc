#include "common/pooled.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace h2mesh {
namespace {

struct Item : Pooled<Item, 4> {
  explicit Item(int v) : value(v) {}
  int value;
  char payload[100] = {};
};

TEST(Pooled, ObjectsAreUsableAndIndependent) {
  std::vector<std::unique_ptr<Item>> items;
  for (int i = 0; i < 10; ++i) items.push_back(std::make_unique<Item>(i));
  std::set<Item*> distinct;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(items[i]->value, i);
    distinct.insert(items[i].get());
  }
  EXPECT_EQ(distinct.size(), 10u);
}

#ifndef __SANITIZE_ADDRESS__
TEST(Pooled, AFreedBlockIsReusedByTheSameThread) {
  auto* a = new Item(1);
  Item* where = a;
  delete a;
  auto* b = new Item(2);
  EXPECT_EQ(b, where);
  EXPECT_EQ(b->value, 2);
  delete b;
}

TEST(Pooled, KeepsAtMostItsLimitAndEachThreadItsOwn) {
  std::vector<Item*> items;
  for (int i = 0; i < 8; ++i) items.push_back(new Item(i));
  for (Item* p : items) delete p;  // 4 cached, 4 returned to malloc
  std::set<Item*> before(items.begin(), items.end());
  Item* other_thread = nullptr;
  std::thread([&] {
    other_thread = new Item(7);  // its own (empty) list: not one of this thread's blocks
    delete other_thread;
  }).join();
  (void)other_thread;
  std::vector<Item*> again;
  for (int i = 0; i < 4; ++i) again.push_back(new Item(i));
  for (Item* p : again) EXPECT_TRUE(before.count(p)) << "cached blocks come back first";
  for (Item* p : again) delete p;
}
#endif

}  // namespace
}  // namespace h2mesh
