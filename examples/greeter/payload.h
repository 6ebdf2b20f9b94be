#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

// Payload conventions shared by the greeter server, its clients and the tests. The interop
// clients (tests/interop) implement the same formulas in Python and JavaScript.
namespace h2mesh::greeter {

// Byte `offset` of the payload of streamed reply `index`: (index * 31 + offset * 7) & 0xff.
constexpr uint8_t pattern_byte(uint32_t index, size_t offset) {
  return static_cast<uint8_t>((static_cast<uint64_t>(index) * 31 + offset * 7) & 0xff);
}

// The whole payload of reply `index`, `size` bytes long.
std::string make_pattern_payload(uint32_t index, size_t size);

// Offset of the first byte of `payload` that breaks the pattern of reply `index`; nullopt when
// every byte matches. The length is not checked here.
std::optional<size_t> find_pattern_mismatch(uint32_t index, std::string_view payload);

inline constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
inline constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

// FNV-1a 64. Feed chunks in order, passing the previous result as `hash`.
uint64_t fnv1a64(std::string_view data, uint64_t hash = kFnvOffsetBasis);

// `value` as 8 bytes, least significant first.
std::string encode_le64(uint64_t value);

}  // namespace h2mesh::greeter
