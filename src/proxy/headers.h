#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "http2/session.h"

namespace h2mesh::proxy {

// The header fields of one HEADERS block of a call (request headers, response headers or
// trailers), copied out of the session as they are decoded. Names and values are stored back to
// back in one byte arena with an index beside it. A typical gRPC block (a dozen fields, a few
// hundred bytes) fits in the object itself, so a call's headers cost no allocation; bigger
// blocks move to the heap, and clear() keeps that capacity for the next block.
class HeaderBlock {
 public:
  static constexpr size_t kInlineBytes = 320;
  static constexpr size_t kInlineFields = 12;

  HeaderBlock() = default;
  HeaderBlock(const HeaderBlock&) = delete;
  HeaderBlock& operator=(const HeaderBlock&) = delete;

  void add(std::string_view name, std::string_view value) {
    size_t need = name.size() + value.size();
    if (used_ + need > byte_capacity()) grow_bytes(used_ + need);
    if (count_ == field_capacity()) grow_fields();
    char* p = bytes() + used_;
    if (!name.empty()) std::memcpy(p, name.data(), name.size());
    if (!value.empty()) std::memcpy(p + name.size(), value.data(), value.size());
    fields()[count_++] = Field{used_, static_cast<uint32_t>(name.size()),
                               static_cast<uint32_t>(value.size())};
    used_ += need;
  }

  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  std::string_view name(size_t i) const {
    const Field& f = fields()[i];
    return {bytes() + f.offset, f.name_len};
  }
  std::string_view value(size_t i) const {
    const Field& f = fields()[i];
    return {bytes() + f.offset + f.name_len, f.value_len};
  }
  // The value of the first field called `name`.
  std::optional<std::string_view> find(std::string_view name) const {
    for (size_t i = 0; i < count_; ++i)
      if (this->name(i) == name) return value(i);
    return std::nullopt;
  }
  void clear() {
    count_ = 0;
    used_ = 0;
  }

 private:
  struct Field {
    size_t offset;
    uint32_t name_len;
    uint32_t value_len;
  };

  char* bytes() { return heap_bytes_ ? heap_bytes_.get() : inline_bytes_.data(); }
  const char* bytes() const { return heap_bytes_ ? heap_bytes_.get() : inline_bytes_.data(); }
  Field* fields() { return heap_fields_ ? heap_fields_.get() : inline_fields_.data(); }
  const Field* fields() const { return heap_fields_ ? heap_fields_.get() : inline_fields_.data(); }
  size_t byte_capacity() const { return heap_bytes_ ? heap_byte_capacity_ : kInlineBytes; }
  size_t field_capacity() const { return heap_fields_ ? heap_field_capacity_ : kInlineFields; }

  void grow_bytes(size_t at_least) {
    size_t cap = std::max(at_least, 2 * byte_capacity());
    auto next = std::make_unique_for_overwrite<char[]>(cap);
    if (used_ > 0) std::memcpy(next.get(), bytes(), used_);
    heap_bytes_ = std::move(next);
    heap_byte_capacity_ = cap;
  }
  void grow_fields() {
    size_t cap = 2 * field_capacity();
    auto next = std::make_unique_for_overwrite<Field[]>(cap);
    std::memcpy(next.get(), fields(), count_ * sizeof(Field));
    heap_fields_ = std::move(next);
    heap_field_capacity_ = cap;
  }

  size_t count_ = 0;
  size_t used_ = 0;
  std::unique_ptr<char[]> heap_bytes_;
  std::unique_ptr<Field[]> heap_fields_;
  size_t heap_byte_capacity_ = 0;
  size_t heap_field_capacity_ = 0;
  std::array<char, kInlineBytes> inline_bytes_;
  std::array<Field, kInlineFields> inline_fields_;
};

// The header list handed to the session for one submit, built on the stack for typical sizes
// (the inline slots are raw storage: nothing is initialised but what is pushed).
class HeaderRefs {
 public:
  static constexpr size_t kInline = 24;

  HeaderRefs() = default;
  explicit HeaderRefs(const HeaderBlock& block) {
    for (size_t i = 0; i < block.size(); ++i) push(block.name(i), block.value(i));
  }
  HeaderRefs(const HeaderRefs&) = delete;
  HeaderRefs& operator=(const HeaderRefs&) = delete;

  void push(std::string_view name, std::string_view value) {
    if (count_ < kInline) {
      new (&inline_[count_ * sizeof(http2::HeaderRef)]) http2::HeaderRef{name, value};
      ++count_;
      return;
    }
    if (heap_.empty()) heap_.assign(inline_refs(), inline_refs() + kInline);
    heap_.push_back({name, value});
    ++count_;
  }
  std::span<const http2::HeaderRef> span() const {
    if (count_ == 0) return {};
    if (count_ <= kInline) return {inline_refs(), count_};
    return {heap_.data(), heap_.size()};
  }

 private:
  static_assert(std::is_trivially_destructible_v<http2::HeaderRef>);
  const http2::HeaderRef* inline_refs() const {
    return std::launder(reinterpret_cast<const http2::HeaderRef*>(inline_));
  }

  alignas(http2::HeaderRef) unsigned char inline_[kInline * sizeof(http2::HeaderRef)];
  std::vector<http2::HeaderRef> heap_;
  size_t count_ = 0;
};

}  // namespace h2mesh::proxy
