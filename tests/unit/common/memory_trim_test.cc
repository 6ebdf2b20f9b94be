#include "common/memory_trim.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace h2mesh {
namespace {

struct Shape {
  virtual ~Shape() = default;
  virtual std::string name() const = 0;
};
struct Square : Shape {
  std::string name() const override { return "square"; }
};

// The process keeps working after its read-only file pages were dropped: code, constants,
// vtables and relocated data (which must never be dropped) are all still right.
TEST(MemoryTrim, DropsReadOnlyFilePagesAndEverythingStillWorks) {
  std::map<std::string, int> warm;
  for (int i = 0; i < 1000; ++i) warm[std::to_string(i)] = i;  // touch library code
  TrimResult r = trim_startup_memory();
  EXPECT_GT(r.rss_before_kib, 0u);
  EXPECT_GT(r.file_kib, 0u) << "a running test binary has resident read-only file pages";
  EXPECT_LT(r.rss_after_kib, r.rss_before_kib);

  std::unique_ptr<Shape> s = std::make_unique<Square>();
  EXPECT_EQ(s->name(), "square");
  std::function<int(int)> twice = [](int x) { return 2 * x; };
  EXPECT_EQ(twice(21), 42);
  EXPECT_EQ(warm.at("999"), 999);
  EXPECT_EQ(std::to_string(3.5), "3.500000");
  EXPECT_THROW(warm.at("missing"), std::out_of_range);  // unwinding tables are read-only data
  EXPECT_GT(resident_kib(), 0u);
}

TEST(MemoryTrim, CanRunAgain) {
  trim_startup_memory();
  TrimResult again = trim_startup_memory();
  EXPECT_GT(again.rss_after_kib, 0u);
}

}  // namespace
}  // namespace h2mesh
