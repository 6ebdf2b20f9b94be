#include "http2/session_arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http2/session.h"

namespace h2mesh::http2 {
namespace {

uintptr_t addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

TEST(SessionArena, NothingIsPlacedOutsideAScopeOrBelowTheMinimumSize) {
  EXPECT_EQ(SessionArena::allocate(4096), nullptr);
  SessionArena::Scope scope;
  EXPECT_EQ(SessionArena::allocate(SessionArena::kMinBlock - 1), nullptr);
  int on_stack = 0;
  EXPECT_FALSE(SessionArena::owns(&on_stack));
  auto heap = std::make_unique<char[]>(64);
  EXPECT_FALSE(SessionArena::owns(heap.get()));
}

// The layout an idle connection depends on: the first block at the arena's start, the first
// large block right after it, the others from the end; zeroed memory without a memset.
TEST(SessionArena, FirstBlockThenLargeBlockShareTheFirstPage) {
  std::vector<void*> blocks;
  void *first, *ring, *map, *frames;
  {
    SessionArena::Scope scope;
    first = SessionArena::allocate(2928);
    ring = SessionArena::allocate(1024);
    map = SessionArena::allocate(4096);
    frames = SessionArena::allocate(16394);
  }
  ASSERT_NE(first, nullptr);
  ASSERT_NE(ring, nullptr);
  ASSERT_NE(map, nullptr);
  ASSERT_NE(frames, nullptr);
  EXPECT_EQ(addr(first) % SessionArena::kArenaBytes, 0u);
  EXPECT_EQ(addr(frames), addr(first) + 2928);  // 2928 is a multiple of 16
  EXPECT_EQ(addr(ring) + 1024, addr(first) + SessionArena::kArenaBytes);
  EXPECT_EQ(addr(map) + 4096, addr(ring));
  for (void* p : {first, ring, map, frames}) EXPECT_TRUE(SessionArena::owns(p));
  EXPECT_EQ(SessionArena::block_size(frames), 16394u);
  const auto* z = static_cast<const unsigned char*>(map);
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(z[i], 0) << i;
  std::memset(first, 0xab, 2928);
  std::memset(frames, 0xcd, 16394);
  EXPECT_EQ(static_cast<unsigned char*>(first)[2927], 0xab) << "blocks do not overlap";

  const size_t live = SessionArena::live_arenas();
  for (void* p : {first, ring, map, frames}) SessionArena::release(p);
  EXPECT_EQ(SessionArena::live_arenas(), live - 1) << "the last free gives the arena back";

  // The next session on this thread reuses the arena, and its pages read as zero again.
  SessionArena::Scope scope;
  void* again = SessionArena::allocate(2928);
  EXPECT_EQ(again, first);
  const auto* a = static_cast<const unsigned char*>(again);
  for (size_t i = 0; i < 2928; ++i) ASSERT_EQ(a[i], 0) << i;
  SessionArena::release(again);
}

// A session may be deleted on another thread than the one that created it: its arena goes back
// to the shared free list and serves the next session, wherever it is created.
TEST(SessionArena, AnArenaFreedOnAnotherThreadIsReused) {
  void* p;
  {
    SessionArena::Scope scope;
    p = SessionArena::allocate(3000);
  }
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x77, 3000);
  std::thread([p] { SessionArena::release(p); }).join();
  SessionArena::Scope scope;
  void* again = SessionArena::allocate(3000);
  EXPECT_EQ(again, p);
  EXPECT_EQ(static_cast<unsigned char*>(again)[2999], 0) << "a reused arena reads as zero";
  SessionArena::release(again);
}

TEST(SessionArena, WhatDoesNotFitIsLeftToTheCaller) {
  SessionArena::Scope scope;
  void* a = SessionArena::allocate(20000);
  void* b = SessionArena::allocate(20000);
  EXPECT_NE(a, nullptr);
  EXPECT_EQ(b, nullptr);
  SessionArena::release(a);
}

class QuietVisitor : public SessionVisitor {
 public:
  void on_stream_open(int32_t) override {}
  void on_header(int32_t, void*, std::string_view, std::string_view) override {}
  void on_headers_end(int32_t, void*, HeadersKind, bool) override {}
  void on_headers_too_large(int32_t, void*, HeadersKind, const HeaderOverflow&) override {}
  void for_each_stream(const std::function<void(int32_t)>&) override {}
  void on_data(int32_t, void*, const uint8_t*, size_t) override {}
  void on_data_end(int32_t, void*) override {}
  void on_stream_close(int32_t, void*, uint32_t) override {}
  void on_goaway(int32_t, uint32_t) override {}
  void on_remote_settings() override {}
  BodyChunk read_body(int32_t, void*, size_t) override { return {}; }
  void write_body(int32_t, void*, size_t, Buffer&) override {}
};

// Sanitizers replace malloc and add shadow memory: RSS says nothing about our layout there.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
size_t rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
  return 0;
}

// What an idle client connection costs in nghttp2: a server session that has sent its SETTINGS
// and received the client's. The issue-3 target for a whole connection is 8 KiB.
TEST(SessionArena, AnIdleServerSessionKeepsAboutOnePage) {
  constexpr int kSessions = 1000;
  const std::string preface = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                              std::string("\0\0\0\4\0\0\0\0\0", 9);
  QuietVisitor visitor;
  std::vector<std::unique_ptr<Session>> sessions;
  sessions.reserve(kSessions);
  Buffer out;
  const size_t before = rss_kib();
  for (int i = 0; i < kSessions; ++i) {
    sessions.push_back(std::make_unique<Session>(Role::Server, visitor, SessionOptions{}));
    ASSERT_TRUE(sessions.back()->receive(reinterpret_cast<const uint8_t*>(preface.data()),
                                         preface.size()));
    ASSERT_TRUE(sessions.back()->produce(out, 1 << 20));
    out.clear();
  }
  const double per_session = static_cast<double>(rss_kib() - before) / kSessions;
  EXPECT_LT(per_session, 6.0) << "KiB per idle session";
  RecordProperty("kib_per_session", std::to_string(per_session));
  sessions.clear();
}
#endif

}  // namespace
}  // namespace h2mesh::http2
