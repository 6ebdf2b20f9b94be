// The worker → writer ring: whole lines in order across the wrap, a full ring drops (and counts)
// instead of waiting, and lines pushed by one thread while another drains all arrive.

#include "observe/line_ring.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace h2mesh::observe {
namespace {

std::string take_all(LineRing& ring) {
  auto r = ring.readable();
  std::string out(r.first);
  out += r.second;
  ring.consume(r.size());
  return out;
}

TEST(LineRing, CapacityIsAPowerOfTwo) {
  EXPECT_EQ(LineRing(1000).capacity(), 1024u);
  EXPECT_EQ(LineRing(4096).capacity(), 4096u);
}

TEST(LineRing, FullRingDropsWholeLinesAndCounts) {
  LineRing ring(64);
  const std::string line(20, 'a');
  EXPECT_TRUE(ring.push(line));
  EXPECT_TRUE(ring.push(line));
  EXPECT_TRUE(ring.push(line));
  EXPECT_FALSE(ring.push(line));  // 80 > 64: not a part of it
  EXPECT_FALSE(ring.push(std::string(65, 'b')));
  EXPECT_EQ(ring.dropped(), 2u);
  EXPECT_EQ(take_all(ring), line + line + line);
  // Room again once the writer took the lines.
  EXPECT_TRUE(ring.push(line));
  EXPECT_EQ(ring.dropped(), 2u);
}

TEST(LineRing, LinesStayWholeAndInOrderAcrossTheWrap) {
  LineRing ring(128);  // three lines of up to 25 bytes between two takes; 128 is not a multiple
  std::string all, got;
  for (int i = 0; i < 100; ++i) {
    const std::string line = "line " + std::to_string(i) + std::string(i % 17, '.') + "\n";
    ASSERT_TRUE(ring.push(line)) << i;
    all += line;
    if (i % 3 == 2) got += take_all(ring);
  }
  got += take_all(ring);
  EXPECT_EQ(got, all);
  EXPECT_EQ(ring.dropped(), 0u);
}

TEST(LineRing, WakesTheConsumerOncePerHalfRing) {
  const int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  LineRing ring(64, efd);
  uint64_t wakes = 0;
  auto read_wakes = [&] {
    uint64_t n = 0;
    return ::read(efd, &n, sizeof(n)) == sizeof(n) ? n : 0;
  };
  ASSERT_TRUE(ring.push(std::string(30, 'a')));
  EXPECT_EQ(read_wakes(), 0u);  // under half
  ASSERT_TRUE(ring.push(std::string(10, 'a')));
  ASSERT_TRUE(ring.push(std::string(10, 'a')));
  wakes = read_wakes();
  EXPECT_EQ(wakes, 1u);  // once, not per line
  take_all(ring);
  ASSERT_TRUE(ring.push(std::string(40, 'a')));
  EXPECT_EQ(read_wakes(), 1u);  // drained since: a new wake-up
  ::close(efd);
}

TEST(LineRing, ConcurrentProducerAndConsumerLoseNothingWithRoom) {
  LineRing ring(1 << 12);
  constexpr int kLines = 20000;
  std::thread producer([&] {
    for (int i = 0; i < kLines; ++i) {
      const std::string line = std::to_string(i) + "\n";
      while (!ring.push(line)) {
      }  // the test's own retry: a worker never waits
    }
  });
  std::string got;
  int lines = 0;
  int expected_next = 0;
  bool ordered = true;
  while (lines < kLines) {
    std::string chunk = take_all(ring);
    got += chunk;
    size_t nl;
    while ((nl = got.find('\n')) != std::string::npos) {
      ordered = ordered && std::stoi(got.substr(0, nl)) == expected_next++;
      got.erase(0, nl + 1);
      ++lines;
    }
  }
  producer.join();
  EXPECT_TRUE(ordered);
  EXPECT_TRUE(got.empty());
}

}  // namespace
}  // namespace h2mesh::observe
