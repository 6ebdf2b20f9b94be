#pragma once

// What libnghttp2 does not check for us, checked on the frame headers before it sees them:
// budgets for frames that cost work but carry nothing (flood protection), and the pieces of
// RFC 9113 it is lenient about. The scanner splits the received byte stream into frames without
// copying payloads; the Session asks it what to check and when to pass bytes on.

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/time.h"
#include "config/config.h"

namespace h2mesh::http2 {

// The budgets are plain config structs (config/config.h says what each one counts).
using FrameBudget = config::FrameBudget;
using FloodLimits = config::FloodLimits;

class TokenBucket {
 public:
  void configure(FrameBudget budget, TimePoint now);
  // Takes one token; false when the bucket is empty (never when the budget is disabled).
  bool take(TimePoint now);
  // Returns a token: a stream that ended well refunds its RST_STREAM. Once per call, so it only
  // adds; take() holds the count to the burst before it looks.
  void give_back() { tokens_ += kScale; }

 private:
  static constexpr int64_t kScale = 1000;  // tokens are kept in thousandths
  FrameBudget budget_;
  int64_t tokens_ = 0;
  TimePoint last_{};
};

struct FrameHeader {
  uint32_t length = 0;
  uint8_t type = 0;
  uint8_t flags = 0;
  int32_t stream_id = 0;
};

// Splits a byte stream into frames. The caller passes bytes on with `passed(n)` as they are
// handed to libnghttp2; frame headers are collected (up to 9 bytes, possibly over several reads)
// so that they can be checked before libnghttp2 sees any of them.
class FrameScanner {
 public:
  explicit FrameScanner(size_t preface_bytes) : skip_(preface_bytes) {}

  // Bytes that may be passed on unchecked now: the rest of the preface or of a frame's payload.
  size_t passthrough() const { return skip_; }
  void passed(size_t n) { skip_ -= n; }
  // At a frame boundary: copies header bytes from `data`; returns how many it took.
  size_t collect_header(const uint8_t* data, size_t len);
  bool header_complete() const { return have_ == kHeaderSize; }
  // Some bytes of a header arrived, not all: they wait here (unseen by libnghttp2).
  bool partial() const { return have_ > 0; }
  FrameHeader header() const { return parse(header_.data()); }
  const uint8_t* header_bytes() const { return header_.data(); }
  // The collected header was handed on: its payload follows.
  void start_payload();
  // A header read in place (not collected): its payload of `length` bytes follows.
  void skip_payload(uint32_t length) { skip_ = length; }
  static FrameHeader parse(const uint8_t* p) {
    // Two big-endian words (length and type; the stream id): two loads where byte by byte would
    // take nine, on every frame received.
    const uint32_t length_type = load_be32(p);
    FrameHeader h;
    h.length = length_type >> 8;
    h.type = static_cast<uint8_t>(length_type);
    h.flags = p[4];
    h.stream_id = static_cast<int32_t>(load_be32(p + 5) & 0x7fffffffu);
    return h;
  }

  static constexpr size_t kHeaderSize = 9;

 private:
  static uint32_t load_be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  }
  std::array<uint8_t, kHeaderSize> header_{};
  size_t have_ = 0;
  size_t skip_;
};

// Stream ids we reset recently: frames the peer sent before it saw our RST_STREAM must be
// ignored, not treated as errors (RFC 9113 section 5.1, "closed").
class RecentResets {
 public:
  void add(int32_t stream_id);
  bool contains(int32_t stream_id) const;

 private:
  std::array<int32_t, 64> ids_{};
  size_t next_ = 0;
};

}  // namespace h2mesh::http2
