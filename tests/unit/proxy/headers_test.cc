#include "proxy/headers.h"

#include <gtest/gtest.h>

#include <string>

namespace h2mesh::proxy {
namespace {

TEST(HeaderBlock, KeepsFieldsInOrderWithEmptyValues) {
  HeaderBlock b;
  EXPECT_TRUE(b.empty());
  b.add(":path", "/helloworld.Greeter/SayHello");
  b.add("grpc-message", "");
  b.add("te", "trailers");
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b.name(0), ":path");
  EXPECT_EQ(b.value(0), "/helloworld.Greeter/SayHello");
  EXPECT_EQ(b.name(1), "grpc-message");
  EXPECT_EQ(b.value(1), "");
  EXPECT_EQ(b.value(2), "trailers");
}

TEST(HeaderBlock, FindReturnsTheFirstFieldOfThatName) {
  HeaderBlock b;
  b.add("x-id", "1");
  b.add("x-id", "2");
  EXPECT_EQ(b.find("x-id"), std::optional<std::string_view>("1"));
  EXPECT_FALSE(b.find("x-other").has_value());
  EXPECT_FALSE(b.find("x-i").has_value()) << "a prefix is not a match";
}

// More fields and bytes than fit inline: everything moves to the heap intact, and clear()
// keeps working for the next block.
TEST(HeaderBlock, GrowsPastItsInlineStorageWithoutLosingFields) {
  HeaderBlock b;
  const size_t n = 3 * HeaderBlock::kInlineFields;
  const std::string big(HeaderBlock::kInlineBytes, 'v');
  for (size_t i = 0; i < n; ++i) b.add("name-" + std::to_string(i), i == 5 ? big : std::to_string(i));
  ASSERT_EQ(b.size(), n);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(b.name(i), "name-" + std::to_string(i));
    EXPECT_EQ(b.value(i), i == 5 ? big : std::to_string(i));
  }
  b.clear();
  EXPECT_TRUE(b.empty());
  b.add("a", "b");
  EXPECT_EQ(b.find("a"), std::optional<std::string_view>("b"));
}

TEST(HeaderRefs, ViewsEveryFieldOfABlockAndGrowsPastItsInlineSize) {
  HeaderBlock b;
  for (size_t i = 0; i < HeaderRefs::kInline + 5; ++i) b.add("k" + std::to_string(i), "v");
  HeaderRefs refs(b);
  auto span = refs.span();
  ASSERT_EQ(span.size(), HeaderRefs::kInline + 5);
  for (size_t i = 0; i < span.size(); ++i) {
    EXPECT_EQ(span[i].name, "k" + std::to_string(i));
    EXPECT_EQ(span[i].value, "v");
  }
  HeaderRefs small;
  small.push(":status", "200");
  ASSERT_EQ(small.span().size(), 1u);
  EXPECT_EQ(small.span()[0].value, "200");
}

}  // namespace
}  // namespace h2mesh::proxy
