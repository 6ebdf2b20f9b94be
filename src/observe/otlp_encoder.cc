#include "observe/otlp_encoder.h"

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

void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void put_tag(std::string* out, uint32_t field, WireType type) {
  put_varint(out, static_cast<uint64_t>(field) << 3 | type);
}

void put_bytes(std::string* out, uint32_t field, std::string_view bytes) {
  put_tag(out, field, LengthDelimited);
  put_varint(out, bytes.size());
  out->append(bytes);
}

template <size_t N>
void put_id(std::string* out, uint32_t field, const std::array<uint8_t, N>& id) {
  put_bytes(out, field, std::string_view(reinterpret_cast<const char*>(id.data()), N));
}

void put_fixed64(std::string* out, uint32_t field, uint64_t v) {
  put_tag(out, field, Fixed64);
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// A nested message: its length comes first, so the body is written after a placeholder and
// the length slid in once known (messages here are small: one shift of the tail at most).
class Nested {
 public:
  Nested(std::string* out, uint32_t field) : out_(out) {
    put_tag(out, field, LengthDelimited);
    start_ = out->size();
  }
  ~Nested() {
    std::string length;
    put_varint(&length, out_->size() - start_);
    out_->insert(start_, length);
  }
  Nested(const Nested&) = delete;
  Nested& operator=(const Nested&) = delete;

 private:
  std::string* out_;
  size_t start_;
};

void put_string_attribute(std::string* out, uint32_t field, std::string_view key,
                          std::string_view value) {
  Nested kv(out, field);
  put_bytes(out, field::kKeyValueKey, key);
  Nested any(out, field::kKeyValueValue);
  put_bytes(out, field::kAnyValueString, value);
}

void put_attribute(std::string* out, uint32_t field, const SpanAttribute& a) {
  if (!a.is_int) {
    put_string_attribute(out, field, a.key, a.string_value);
    return;
  }
  Nested kv(out, field);
  put_bytes(out, field::kKeyValueKey, a.key);
  Nested any(out, field::kKeyValueValue);
  put_tag(out, field::kAnyValueInt, Varint);
  put_varint(out, static_cast<uint64_t>(a.int_value));  // int64: two's complement, 10 bytes if < 0
}

void put_span(std::string* out, const SpanRecord& s) {
  Nested span(out, field::kScopeSpansSpans);
  put_id(out, field::kSpanTraceId, s.trace_id);
  put_id(out, field::kSpanSpanId, s.span_id);
  bool root = true;
  for (uint8_t b : s.parent_span_id) root = root && b == 0;
  if (!root) put_id(out, field::kSpanParentSpanId, s.parent_span_id);
  put_bytes(out, field::kSpanName, s.name);
  put_tag(out, field::kSpanKind, Varint);
  put_varint(out, static_cast<uint64_t>(s.kind));
  put_fixed64(out, field::kSpanStartTime, s.start_unix_nanos);
  put_fixed64(out, field::kSpanEndTime, s.end_unix_nanos);
  for (size_t i = 0; i < s.attribute_count; ++i)
    put_attribute(out, field::kSpanAttributes, s.attributes[i]);
  if (s.error) {
    Nested status(out, field::kSpanStatus);
    if (!s.status_message.empty()) put_bytes(out, field::kStatusMessage, s.status_message);
    put_tag(out, field::kStatusCode, Varint);
    put_varint(out, kStatusCodeError);
  }
}

}  // namespace

void SpanRecord::add(const char* key, std::string_view value) {
  if (attribute_count == kMaxAttributes) return;
  SpanAttribute& a = attributes[attribute_count++];
  a.key = key;
  a.is_int = false;
  a.string_value.assign(value);
}

void SpanRecord::add(const char* key, int64_t value) {
  if (attribute_count == kMaxAttributes) return;
  SpanAttribute& a = attributes[attribute_count++];
  a.key = key;
  a.is_int = true;
  a.int_value = value;
}

void encode_export_request(const ResourceAttributes& resource, std::string_view scope_version,
                           const std::vector<const SpanRecord*>& spans, std::string* out) {
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

}  // namespace h2mesh::observe
