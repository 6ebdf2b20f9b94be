// grpc-timeout: the parser against an independent reading of the gRPC spec ("1 to 8 ASCII
// digits, then one of H M S m u n"), and format_timeout's round trip.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "grpc/status.h"

namespace {

constexpr __int128 kMaxNs = __int128{100} * 365 * 24 * 3600 * 1000000000;

// nullopt-like -1 when malformed; otherwise nanoseconds, capped as the proxy caps them.
__int128 reference_parse(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return -1;
  __int128 n = 0;
  for (char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  __int128 unit;
  switch (v.back()) {
    case 'H': unit = __int128{3600} * 1000000000; break;
    case 'M': unit = __int128{60} * 1000000000; break;
    case 'S': unit = 1000000000; break;
    case 'm': unit = 1000000; break;
    case 'u': unit = 1000; break;
    case 'n': unit = 1; break;
    default: return -1;
  }
  __int128 ns = n * unit;
  return ns > kMaxNs ? kMaxNs : ns;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view v(reinterpret_cast<const char*>(data), size);
  auto parsed = h2mesh::grpc::parse_timeout(v);
  __int128 expected = reference_parse(v);
  if (parsed.has_value() != (expected >= 0)) abort();
  if (parsed && parsed->count() != expected) abort();

  // Any duration the proxy sends upstream (the remaining time) is well-formed, at most 8
  // digits, and never shorter than the time left.
  if (size >= 8) {
    int64_t ns;
    __builtin_memcpy(&ns, data, sizeof ns);
    auto text = h2mesh::grpc::format_timeout(h2mesh::Duration(ns));
    auto back = h2mesh::grpc::parse_timeout(text);
    if (!back || text.size() > 9) abort();
    int64_t want = ns < 1 ? 1 : ns;
    if (back->count() < want && back->count() != kMaxNs) abort();
  }
  return 0;
}
