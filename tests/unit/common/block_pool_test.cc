#include "common/block_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

namespace h2mesh {
namespace {

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

TEST(BlockPool, BlocksOfEverySizeAreAlignedWritableAndDistinct) {
  std::vector<std::pair<char*, size_t>> blocks;
  for (size_t n : {size_t{1}, size_t{47}, size_t{48}, size_t{49}, size_t{1000}, size_t{1008},
                   size_t{1009}, size_t{4096}, size_t{20000}}) {
    for (int i = 0; i < 3; ++i) {
      auto* p = static_cast<char*>(BlockPool::allocate(n));
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(aligned16(p)) << n;
      std::memset(p, 0x5a, n);
      blocks.emplace_back(p, n);
    }
  }
  std::set<char*> distinct;
  for (auto& [p, n] : blocks) distinct.insert(p);
  EXPECT_EQ(distinct.size(), blocks.size());
  for (auto& [p, n] : blocks) {
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], 0x5a) << "block of " << n << " overwritten";
    BlockPool::release(p);
  }
}

TEST(BlockPool, ZeroedAllocationIsZeroAndOverflowIsRefused) {
  auto* p = static_cast<unsigned char*>(BlockPool::allocate(100));
  std::memset(p, 0xff, 100);
  BlockPool::release(p);  // cached: the next block of that class may be this one
  auto* z = static_cast<unsigned char*>(BlockPool::allocate_zeroed(10, 10));
  for (int i = 0; i < 100; ++i) ASSERT_EQ(z[i], 0) << i;
  BlockPool::release(z);
  EXPECT_EQ(BlockPool::allocate_zeroed(SIZE_MAX / 2, 4), nullptr);
  EXPECT_EQ(BlockPool::allocate(SIZE_MAX - 4), nullptr);
}

TEST(BlockPool, ReallocateKeepsTheContentsWhenGrowingAndShrinking) {
  void* p = BlockPool::reallocate(nullptr, 10);
  std::memcpy(p, "0123456789", 10);
  p = BlockPool::reallocate(p, 30);  // same 64-byte class
  EXPECT_EQ(std::memcmp(p, "0123456789", 10), 0);
  p = BlockPool::reallocate(p, 10000);  // to malloc
  EXPECT_EQ(std::memcmp(p, "0123456789", 10), 0);
  p = BlockPool::reallocate(p, 5);
  EXPECT_EQ(std::memcmp(p, "01234", 5), 0);
  EXPECT_EQ(BlockPool::reallocate(p, 0), nullptr);  // frees
  BlockPool::release(nullptr);
}

TEST(BlockPool, FreedBlocksAreCachedUpToTheLimit) {
  const size_t before = BlockPool::cached_bytes();
  std::vector<void*> blocks;
  const size_t n = 2 * BlockPool::kMaxCachedBytes / 1024;  // 1 KiB class
  for (size_t i = 0; i < n; ++i) blocks.push_back(BlockPool::allocate(BlockPool::kMaxPooled));
  for (void* p : blocks) BlockPool::release(p);
  const size_t after = BlockPool::cached_bytes();
  EXPECT_GT(after, before);
  EXPECT_LE(after - before, BlockPool::kMaxCachedBytes) << "the cache of one class is bounded";
}

TEST(BlockPool, BlocksMayBeFreedOnAnotherThread) {
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(BlockPool::allocate(200));
  std::thread([&] {
    for (void* p : blocks) BlockPool::release(p);
    void* mine = BlockPool::allocate(200);  // served from what this thread just freed
    EXPECT_NE(mine, nullptr);
    BlockPool::release(mine);
  }).join();  // the thread's pool goes back to malloc at exit (the leak checker would see it)
}

}  // namespace
}  // namespace h2mesh
