#include "observe/otlp_encoder.h"

#include <bit>
#include <cassert>
#include <cstring>

namespace h2mesh::observe {
namespace {

// Field numbers of opentelemetry-proto (collector/trace/v1/trace_service.proto,
// trace/v1/trace.proto, resource/v1/resource.proto, common/v1/common.proto).
namespace field {
constexpr uint32_t kRequestResourceSpans = 1;
constexpr uint32_t kResourceSpansResource = 1;
constexpr uint32_t kResourceSpansScopeSpans = 2;
constexpr uint32_t kResourceAttributes = 1;
constexpr uint32_t kScopeSpansScope = 1;
constexpr uint32_t kScopeSpansSpans = 2;
constexpr uint32_t kScopeName = 1;
constexpr uint32_t kScopeVersion = 2;
constexpr uint32_t kSpanTraceId = 1;
constexpr uint32_t kSpanSpanId = 2;
constexpr uint32_t kSpanTraceState = 3;
constexpr uint32_t kSpanParentSpanId = 4;
constexpr uint32_t kSpanName = 5;
constexpr uint32_t kSpanKind = 6;
constexpr uint32_t kSpanStartTime = 7;
constexpr uint32_t kSpanEndTime = 8;
constexpr uint32_t kSpanAttributes = 9;
constexpr uint32_t kSpanStatus = 15;
constexpr uint32_t kStatusMessage = 2;
constexpr uint32_t kStatusCode = 3;
constexpr uint32_t kKeyValueKey = 1;
constexpr uint32_t kKeyValueValue = 2;
constexpr uint32_t kAnyValueString = 1;
constexpr uint32_t kAnyValueInt = 3;
}  // namespace field

constexpr uint32_t kStatusCodeError = 2;

enum WireType : uint32_t { Varint = 0, Fixed64 = 1, LengthDelimited = 2 };

size_t varint_size(uint64_t v) {
  // 1 + one byte per 7 bits above the first 7: (bits - 1) / 7 with bits >= 1.
  return 1 + static_cast<size_t>(63 - std::countl_zero(v | 1)) / 7;
}

// A message's length comes before it, so the request is walked twice by the same code (the
// put_* templates below) with two sinks: Measure counts the bytes and records the length of
// every nested message in the order they open; Write then writes each byte once, taking the
// lengths in the same order, into room reserved for the whole request. (The first encoder
// appended each message and slid its length in front of it afterwards: every byte moved once
// per level of nesting.)
class Measure {
 public:
  struct Mark {
    size_t index;
    size_t start;
  };
  explicit Measure(std::vector<size_t>* lengths) : lengths_(lengths) {}
  void varint(uint64_t v) { size_ += varint_size(v); }
  void raw(std::string_view bytes) { size_ += bytes.size(); }
  void fixed64(uint64_t) { size_ += 8; }
  Mark open() {
    lengths_->push_back(0);
    return {lengths_->size() - 1, size_};
  }
  void close(Mark m) {
    const size_t length = size_ - m.start;
    (*lengths_)[m.index] = length;
    size_ += varint_size(length);
  }
  size_t size() const { return size_; }

 private:
  std::vector<size_t>* lengths_;
  size_t size_ = 0;
};

// Writes into room made for the whole request. Bytes go through a local pointer: a char store
// may alias any member, so writing through `*at_++` would reload and store at_ around every byte.
class Write {
 public:
  struct Mark {};
  Write(char* at, const size_t* lengths) : at_(at), next_length_(lengths) {}
  void varint(uint64_t v) {
    char* p = at_;
    while (v >= 0x80) {
      *p++ = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<char>(v);
    at_ = p;
  }
  void raw(std::string_view bytes) {
    std::memcpy(at_, bytes.data(), bytes.size());
    at_ += bytes.size();
  }
  void fixed64(uint64_t v) {
    char* p = at_;
    for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
    at_ = p + 8;
  }
  Mark open() {
    varint(*next_length_++);
    return {};
  }
  void close(Mark) {}
  const char* at() const { return at_; }

 private:
  char* at_;
  const size_t* next_length_;
};

template <typename Sink>
void put_tag(Sink& out, uint32_t field, WireType type) {
  out.varint(static_cast<uint64_t>(field) << 3 | type);
}

template <typename Sink>
void put_bytes(Sink& out, uint32_t field, std::string_view bytes) {
  put_tag(out, field, LengthDelimited);
  out.varint(bytes.size());
  out.raw(bytes);
}

template <typename Sink, size_t N>
void put_id(Sink& out, uint32_t field, const std::array<uint8_t, N>& id) {
  put_bytes(out, field, std::string_view(reinterpret_cast<const char*>(id.data()), N));
}

template <typename Sink>
void put_fixed64(Sink& out, uint32_t field, uint64_t v) {
  put_tag(out, field, Fixed64);
  out.fixed64(v);
}

template <typename Sink>
void put_varint_field(Sink& out, uint32_t field, uint64_t v) {
  put_tag(out, field, Varint);
  out.varint(v);
}

// A nested message, from construction to destruction: its tag, then (Write) its length.
template <typename Sink>
class Nested {
 public:
  Nested(Sink& out, uint32_t field) : out_(out) {
    put_tag(out, field, LengthDelimited);
    mark_ = out.open();
  }
  ~Nested() { out_.close(mark_); }
  Nested(const Nested&) = delete;
  Nested& operator=(const Nested&) = delete;

 private:
  Sink& out_;
  typename Sink::Mark mark_;
};

template <typename Sink>
void put_string_attribute(Sink& out, uint32_t field, std::string_view key, std::string_view value) {
  Nested kv(out, field);
  put_bytes(out, field::kKeyValueKey, key);
  Nested any(out, field::kKeyValueValue);
  put_bytes(out, field::kAnyValueString, value);
}

template <typename Sink>
void put_attribute(Sink& out, uint32_t field, const SpanAttribute& a) {
  if (!a.is_int) {
    put_string_attribute(out, field, a.key, a.string_value);
    return;
  }
  Nested kv(out, field);
  put_bytes(out, field::kKeyValueKey, a.key);
  Nested any(out, field::kKeyValueValue);
  // int64: two's complement, 10 bytes if < 0
  put_varint_field(out, field::kAnyValueInt, static_cast<uint64_t>(a.int_value));
}

template <typename Sink>
void put_span(Sink& out, const SpanRecord& s) {
  Nested span(out, field::kScopeSpansSpans);
  put_id(out, field::kSpanTraceId, s.trace_id);
  put_id(out, field::kSpanSpanId, s.span_id);
  if (!s.trace_state.empty()) put_bytes(out, field::kSpanTraceState, s.trace_state);
  bool root = true;
  for (uint8_t b : s.parent_span_id) root = root && b == 0;
  if (!root) put_id(out, field::kSpanParentSpanId, s.parent_span_id);
  put_bytes(out, field::kSpanName, s.name);
  put_varint_field(out, field::kSpanKind, static_cast<uint64_t>(s.kind));
  put_fixed64(out, field::kSpanStartTime, s.start_unix_nanos);
  put_fixed64(out, field::kSpanEndTime, s.end_unix_nanos);
  for (size_t i = 0; i < s.attribute_count; ++i)
    put_attribute(out, field::kSpanAttributes, s.attributes[i]);
  if (s.error) {
    Nested status(out, field::kSpanStatus);
    if (!s.status_message.empty()) put_bytes(out, field::kStatusMessage, s.status_message);
    put_varint_field(out, field::kStatusCode, kStatusCodeError);
  }
}

template <typename Sink>
void put_request(Sink& out, const ResourceAttributes& resource, std::string_view scope_version,
                 const std::vector<const SpanRecord*>& spans) {
  Nested resource_spans(out, field::kRequestResourceSpans);
  {
    Nested r(out, field::kResourceSpansResource);
    for (const auto& [key, value] : resource.values)
      put_string_attribute(out, field::kResourceAttributes, key, value);
  }
  Nested scope_spans(out, field::kResourceSpansScopeSpans);
  {
    Nested scope(out, field::kScopeSpansScope);
    put_bytes(out, field::kScopeName, "h2mesh");
    if (!scope_version.empty()) put_bytes(out, field::kScopeVersion, scope_version);
  }
  for (const SpanRecord* s : spans) put_span(out, *s);
}

}  // namespace

void SpanRecord::add(std::string_view key, std::string_view value) {
  if (attribute_count == kMaxAttributes) return;
  SpanAttribute& a = attributes[attribute_count++];
  a.key = key;
  a.is_int = false;
  a.string_value.assign(value);
}

void SpanRecord::add(std::string_view key, int64_t value) {
  if (attribute_count == kMaxAttributes) return;
  SpanAttribute& a = attributes[attribute_count++];
  a.key = key;
  a.is_int = true;
  a.int_value = value;
}

void encode_export_request(const ResourceAttributes& resource, std::string_view scope_version,
                           const std::vector<const SpanRecord*>& spans, std::string* out) {
  // The exporter thread's; kept so that its capacity (a few lengths per span) is reused.
  thread_local std::vector<size_t> lengths;
  lengths.clear();
  Measure measure(&lengths);
  put_request(measure, resource, scope_version, spans);
  // Every byte is written below: only what a larger request adds to the last one's size is
  // zeroed first by resize (std::string has no resize without initialization before C++23).
  out->resize(measure.size());
  Write write(out->data(), lengths.data());
  put_request(write, resource, scope_version, spans);
  assert(write.at() == out->data() + out->size());
}

}  // namespace h2mesh::observe
