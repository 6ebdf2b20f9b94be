#pragma once

#include <cstdint>

namespace h2mesh {

// Small fast PRNG (xoshiro256**). One instance per worker; injected into LB policies so tests
// can make picks deterministic.
class Random {
 public:
  explicit Random(uint64_t seed);
  uint64_t next();
  // Uniform in [0, bound), bound > 0 (Lemire's multiply-shift; bias is negligible for our sizes).
  uint32_t uniform(uint32_t bound) {
    return static_cast<uint32_t>((static_cast<uint64_t>(static_cast<uint32_t>(next() >> 32)) * bound) >> 32);
  }
  // Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_[4];
};

}  // namespace h2mesh
