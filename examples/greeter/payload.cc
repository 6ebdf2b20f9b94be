#include "greeter/payload.h"

#include <algorithm>
#include <cstring>

namespace h2mesh::greeter {

std::string make_pattern_payload(uint32_t index, size_t size) {
  std::string payload(size, '\0');
  // 7 is odd, so the pattern repeats every 256 bytes: fill one period, then copy it forward.
  const size_t period = std::min<size_t>(size, 256);
  for (size_t i = 0; i < period; ++i) payload[i] = static_cast<char>(pattern_byte(index, i));
  for (size_t done = period; done < size;) {
    const size_t chunk = std::min(done, size - done);
    std::memcpy(payload.data() + done, payload.data(), chunk);
    done += chunk;
  }
  return payload;
}

std::optional<size_t> find_pattern_mismatch(uint32_t index, std::string_view payload) {
  for (size_t i = 0; i < payload.size(); ++i) {
    if (static_cast<uint8_t>(payload[i]) != pattern_byte(index, i)) return i;
  }
  return std::nullopt;
}

uint64_t fnv1a64(std::string_view data, uint64_t hash) {
  for (char c : data) {
    hash ^= static_cast<uint8_t>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

std::string encode_le64(uint64_t value) {
  std::string out(8, '\0');
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

}  // namespace h2mesh::greeter
