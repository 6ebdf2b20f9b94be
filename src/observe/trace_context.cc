#include "observe/trace_context.h"

#include <sys/random.h>

#include <algorithm>
#include <chrono>

namespace h2mesh::observe {
namespace {

// Lower-case hex only: the spec makes an upper-case digit an invalid field.
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

template <size_t N>
bool read_hex(std::string_view text, std::array<uint8_t, N>* out) {
  if (text.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    int hi = hex_value(text[2 * i]);
    int lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
bool all_zero(const std::array<uint8_t, N>& id) {
  return std::all_of(id.begin(), id.end(), [](uint8_t b) { return b == 0; });
}

template <size_t N>
void write_hex(const std::array<uint8_t, N>& id, char* out) {
  auto hex = to_hex(id);
  std::copy(hex.begin(), hex.end(), out);
}

uint64_t kernel_seed() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != static_cast<ssize_t>(sizeof(seed))) {
    // Early boot without entropy: the clock still differs between pods.
    seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) ^
           static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return seed;
}

template <size_t N>
void fill(Random& random, std::array<uint8_t, N>* id) {
  do {
    for (size_t i = 0; i < N; i += 8) {
      uint64_t r = random.next();
      for (size_t j = 0; j < 8 && i + j < N; ++j) (*id)[i + j] = static_cast<uint8_t>(r >> (8 * j));
    }
  } while (all_zero(*id));
}

}  // namespace

std::optional<TraceParent> parse_traceparent(std::string_view value) {
  // version "-" trace-id "-" parent-id "-" flags
  if (value.size() < kTraceparentLength) return std::nullopt;
  std::array<uint8_t, 1> version{};
  if (!read_hex(value.substr(0, 2), &version) || version[0] == 0xff) return std::nullopt;
  if (version[0] == 0x00 && value.size() != kTraceparentLength) return std::nullopt;
  // A later version may add fields, always after a '-'.
  if (value.size() > kTraceparentLength && value[kTraceparentLength] != '-') return std::nullopt;
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') return std::nullopt;
  TraceParent p;
  std::array<uint8_t, 1> flags{};
  if (!read_hex(value.substr(3, 32), &p.trace_id) || !read_hex(value.substr(36, 16), &p.parent_id) ||
      !read_hex(value.substr(53, 2), &flags))
    return std::nullopt;
  if (all_zero(p.trace_id) || all_zero(p.parent_id)) return std::nullopt;
  p.flags = flags[0];
  return p;
}

void format_traceparent(const TraceId& trace_id, const SpanId& span_id, bool sampled,
                        char (&out)[kTraceparentLength]) {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  write_hex(trace_id, out + 3);
  out[35] = '-';
  write_hex(span_id, out + 36);
  out[52] = '-';
  out[53] = '0';
  out[54] = sampled ? '1' : '0';
}

TraceSampler::TraceSampler(double ratio) : ratio_(ratio), random_(kernel_seed()) {}

TraceId TraceSampler::new_trace_id() {
  TraceId id;
  fill(random_, &id);
  return id;
}

SpanId TraceSampler::new_span_id() {
  SpanId id;
  fill(random_, &id);
  return id;
}

bool TraceSampler::sample(const std::optional<TraceParent>& parent) {
  if (parent) return parent->sampled();
  if (ratio_ >= 1.0) return true;
  if (ratio_ <= 0.0) return false;
  return random_.unit() < ratio_;
}

CallTrace start_call_trace(std::optional<std::string_view> traceparent, TraceSampler& sampler) {
  std::optional<TraceParent> parent;
  if (traceparent) parent = parse_traceparent(*traceparent);
  CallTrace t;
  t.continued = parent.has_value();
  t.sampled = sampler.sample(parent);
  if (parent) {
    t.trace_id = parent->trace_id;
    t.parent_span_id = parent->parent_id;
  } else {
    t.trace_id = sampler.new_trace_id();
  }
  t.span_id = sampler.new_span_id();
  return t;
}

bool tracestate_ok(std::string_view value) {
  if (value.size() > 512) return false;
  for (char c : value)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace h2mesh::observe
