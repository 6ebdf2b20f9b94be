#include <gtest/gtest.h>

#include "cluster/health_checker.h"

namespace h2mesh::cluster {
namespace {

std::string framed(const std::string& msg) {
  std::string f(5, '\0');
  f[4] = static_cast<char>(msg.size());
  return f + msg;
}

TEST(HealthFrame, EmptyServiceIsAnEmptyMessage) {
  EXPECT_EQ(health_request_frame(""), std::string(5, '\0'));
}

TEST(HealthFrame, ServiceNameIsFieldOne) {
  std::string f = health_request_frame("helloworld.Greeter");
  ASSERT_EQ(f.size(), 5u + 2 + 18);
  EXPECT_EQ(f[4], 20);
  EXPECT_EQ(f[5], 0x0a);
  EXPECT_EQ(f[6], 18);
  EXPECT_EQ(f.substr(7), "helloworld.Greeter");
}

TEST(HealthFrame, LongServiceNameUsesAMultiByteLength) {
  std::string name(300, 'x');
  std::string f = health_request_frame(name);
  EXPECT_EQ(static_cast<uint8_t>(f[6]), 0xac);  // 300 = 0b10_0101100
  EXPECT_EQ(static_cast<uint8_t>(f[7]), 0x02);
  EXPECT_EQ(f.size(), 5u + 3 + 300);
}

TEST(HealthFrame, ParsesServingAndNotServing) {
  EXPECT_EQ(health_response_status(framed("\x08\x01")), 1);
  EXPECT_EQ(health_response_status(framed("\x08\x02")), 2);
  EXPECT_EQ(health_response_status(framed("")), 0);  // proto3 default: UNKNOWN
}

TEST(HealthFrame, SkipsUnknownFields) {
  EXPECT_EQ(health_response_status(framed(std::string("\x12\x03" "abc" "\x08\x01", 7))), 1);
}

TEST(HealthFrame, RejectsMalformedFrames) {
  EXPECT_EQ(health_response_status(""), -1);
  EXPECT_EQ(health_response_status(std::string("\x01\x00\x00\x00\x00", 5)), -1);  // compressed
  EXPECT_EQ(health_response_status(framed("\x08")), -1);                         // cut varint
  EXPECT_EQ(health_response_status(framed("\x12\x09" "ab")), -1);                // overlong field
  std::string short_frame = framed("\x08\x01");
  short_frame.pop_back();
  EXPECT_EQ(health_response_status(short_frame), -1);
}

}  // namespace
}  // namespace h2mesh::cluster
