#include "common/buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

namespace h2mesh {
namespace {

template <typename B>
std::string contents(const B& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

template <typename B>
void append_str(B& b, std::string_view s) { b.append(s.data(), s.size()); }

TEST(Buffer, NewBufferIsEmpty) {
  Buffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
}

TEST(Buffer, AppendThenDrainIsFifo) {
  Buffer b;
  append_str(b, "hello ");
  append_str(b, "world");
  EXPECT_EQ(contents(b), "hello world");
  b.drain(6);
  EXPECT_EQ(contents(b), "world");
  append_str(b, "!");
  EXPECT_EQ(contents(b), "world!");
}

TEST(Buffer, AppendingNothingChangesNothing) {
  Buffer b;
  b.append(nullptr, 0);
  EXPECT_TRUE(b.empty());
  append_str(b, "abc");
  b.drain(1);
  b.append(nullptr, 0);
  EXPECT_EQ(contents(b), "bc");
}

TEST(Buffer, ExtendReturnsSpaceAtTheBack) {
  Buffer b;
  append_str(b, "ab");
  uint8_t* p = b.extend(3);
  p[0] = 'c';
  p[1] = 'd';
  p[2] = 'e';
  EXPECT_EQ(contents(b), "abcde");
  b.drain(4);
  p = b.extend(2);  // compaction may move the remaining byte first
  p[0] = 'f';
  p[1] = 'g';
  EXPECT_EQ(contents(b), "efg");
}

TEST(Buffer, DrainingEverythingResetsTheBuffer) {
  Buffer b;
  append_str(b, "0123456789");
  b.drain(10);
  EXPECT_TRUE(b.empty());
  append_str(b, "x");
  EXPECT_EQ(contents(b), "x");
}

TEST(Buffer, DrainingMoreThanHeldEmptiesTheBuffer) {
  Buffer b;
  append_str(b, "abc");
  b.drain(100);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  append_str(b, "d");
  EXPECT_EQ(contents(b), "d");
}

TEST(Buffer, ClearForgetsEverything) {
  Buffer b;
  append_str(b, "abc");
  b.drain(1);
  b.clear();
  EXPECT_TRUE(b.empty());
  append_str(b, "z");
  EXPECT_EQ(contents(b), "z");
}

TEST(Buffer, CompactionKeepsUndrainedBytes) {
  // Drain most of a large buffer, then append: the tail must survive being moved to the front.
  Buffer b;
  std::string big(100000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
  append_str(b, big);
  b.drain(99990);
  append_str(b, "tail");
  EXPECT_EQ(contents(b), big.substr(99990) + "tail");
}

TEST(Buffer, ReleaseIfEmptyOnlyReleasesAnEmptyBuffer) {
  Buffer b;
  std::string big(200000, 'x');
  append_str(b, big);
  b.release_if_empty();  // not empty: must keep the bytes
  EXPECT_EQ(b.size(), big.size());
  b.drain(big.size());
  b.release_if_empty();
  EXPECT_TRUE(b.empty());
  append_str(b, "again");
  EXPECT_EQ(contents(b), "again");
}

// Random appends, extends, drains and clears against a std::deque model, with a fixed seed so a
// failure replays exactly. Sizes cross the compaction thresholds in both directions.
template <typename B>
void random_operations_match_a_deque_model() {
  std::mt19937_64 rng(20240611);
  B b;
  std::deque<uint8_t> model;
  uint8_t next_byte = 0;
  auto fill = [&](uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      p[i] = next_byte;
      model.push_back(next_byte);
      next_byte = static_cast<uint8_t>(next_byte * 13 + 101);
    }
  };
  auto rand_size = [&](size_t max) {
    // Mostly small, sometimes large, sometimes zero.
    switch (rng() % 4) {
      case 0: return size_t{0};
      case 1: return static_cast<size_t>(rng() % 16);
      case 2: return static_cast<size_t>(rng() % 4096);
      default: return static_cast<size_t>(rng() % (max + 1));
    }
  };
  for (int op = 0; op < 20000; ++op) {
    switch (rng() % 10) {
      case 0: case 1: case 2: {  // append
        std::vector<uint8_t> tmp(rand_size(70000));
        size_t before = model.size();
        fill(tmp.data(), tmp.size());
        (void)before;
        b.append(tmp.data(), tmp.size());
        break;
      }
      case 3: case 4: {  // extend
        size_t n = rand_size(70000);
        fill(b.extend(n), n);
        break;
      }
      case 5: case 6: case 7: case 8: {  // drain part
        size_t n = model.empty() ? 0 : static_cast<size_t>(rng() % (model.size() + 1));
        b.drain(n);
        model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(n));
        break;
      }
      default: {
        if (rng() % 8 == 0) {
          b.clear();
          model.clear();
        } else {
          b.release_if_empty();
        }
      }
    }
    ASSERT_EQ(b.size(), model.size()) << "op " << op;
    ASSERT_EQ(b.empty(), model.empty()) << "op " << op;
    if (!model.empty()) {
      ASSERT_TRUE(std::equal(model.begin(), model.end(), b.data())) << "op " << op;
    }
  }
}

TEST(Buffer, RandomOperationsMatchADequeModel) { random_operations_match_a_deque_model<Buffer>(); }

// The same with inline storage: bytes move between the object and the heap both ways.
TEST(SmallBuffer, RandomOperationsMatchADequeModel) {
  random_operations_match_a_deque_model<SmallBuffer<64>>();
}

TEST(SmallBuffer, SmallContentsStayInline) {
  SmallBuffer<64> b;
  append_str(b, "0123456789");
  EXPECT_EQ(b.capacity(), 64u);
  b.drain(4);
  append_str(b, std::string(58, 'x'));  // fits once the drained front is reclaimed
  EXPECT_EQ(b.capacity(), 64u);
  EXPECT_EQ(contents(b), "456789" + std::string(58, 'x'));
  append_str(b, "!");
  EXPECT_GT(b.capacity(), 64u);
  EXPECT_EQ(contents(b), "456789" + std::string(58, 'x') + "!");
}

}  // namespace
}  // namespace h2mesh
