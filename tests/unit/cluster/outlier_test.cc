#include "cluster/outlier.h"

#include <gtest/gtest.h>

namespace h2mesh::cluster {
namespace {

TEST(Outlier, OneHostMayAlwaysBeEjected) {
  EXPECT_TRUE(may_eject(0, 4, 10));  // 10% of 4 is 0.4 hosts: still one may go
  EXPECT_FALSE(may_eject(1, 4, 10));
}

TEST(Outlier, ShareCapsEjections) {
  EXPECT_TRUE(may_eject(1, 4, 50));
  EXPECT_FALSE(may_eject(2, 4, 50));
  EXPECT_TRUE(may_eject(3, 4, 100));
  EXPECT_FALSE(may_eject(4, 4, 100));
}

TEST(Outlier, ZeroPercentOrEmptyClusterNeverEjects) {
  EXPECT_FALSE(may_eject(0, 4, 0));
  EXPECT_FALSE(may_eject(0, 0, 100));
}

TEST(Outlier, EjectionTimeGrowsWithEachEjectionUpToTheCap) {
  config::OutlierDetection od;
  od.base_ejection_time = std::chrono::milliseconds(30000);
  od.max_ejection_time = std::chrono::milliseconds(100000);
  EXPECT_EQ(ejection_duration(1, od), std::chrono::seconds(30));
  EXPECT_EQ(ejection_duration(2, od), std::chrono::seconds(60));
  EXPECT_EQ(ejection_duration(3, od), std::chrono::seconds(90));
  EXPECT_EQ(ejection_duration(4, od), std::chrono::seconds(100));
  EXPECT_EQ(ejection_duration(4000000000u, od), std::chrono::seconds(100));
}

}  // namespace
}  // namespace h2mesh::cluster
