#include "cluster/outlier.h"

#include <algorithm>

namespace h2mesh::cluster {

bool may_eject(size_t ejected, size_t total, uint32_t max_ejection_percent) {
  if (total == 0 || max_ejection_percent == 0) return false;
  if (ejected == 0) return true;  // one host may always be ejected, whatever the share
  return (ejected + 1) * 100 <= total * max_ejection_percent;
}

Duration ejection_duration(uint32_t nth, const config::OutlierDetection& s) {
  auto base = std::chrono::duration_cast<Duration>(s.base_ejection_time);
  auto max = std::chrono::duration_cast<Duration>(s.max_ejection_time);
  if (nth == 0) nth = 1;
  // Saturate instead of overflowing for hosts ejected many times.
  if (base.count() > 0 && nth > max.count() / base.count()) return max;
  return std::min(base * nth, max);
}

}  // namespace h2mesh::cluster
