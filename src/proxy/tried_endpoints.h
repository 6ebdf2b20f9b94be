#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "config/config.h"

namespace h2mesh::proxy {

// The endpoints a call's failed attempts went to, so that a retry goes to one it has not tried
// while there is one. Bounded by max_attempts, so fixed storage: no allocation per call.
// Endpoints are known by the hash of their key (the address: their identity across snapshots,
// as pools are keyed). A collision can only make a retry avoid one more endpoint, and avoiding
// is a preference, never a refusal. Owned by one DownstreamStream, used on its worker.
class TriedEndpoints {
 public:
  static constexpr size_t kCapacity = config::RetryPolicy::kMaxAttemptsLimit;

  void add(const std::string& key) {
    if (count_ < kCapacity && !contains(key)) hashes_[count_++] = std::hash<std::string>{}(key);
  }
  bool contains(const std::string& key) const {
    if (count_ == 0) return false;
    const size_t h = std::hash<std::string>{}(key);
    for (size_t i = 0; i < count_; ++i)
      if (hashes_[i] == h) return true;
    return false;
  }
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }

 private:
  std::array<size_t, kCapacity> hashes_{};
  size_t count_ = 0;
};

}  // namespace h2mesh::proxy
