#include "common/wall_anchor.h"

namespace h2mesh {

WallAnchor::WallAnchor() { reset(Clock::now()); }

void WallAnchor::reset(TimePoint loop_now) {
  offset_ = std::chrono::system_clock::now().time_since_epoch() -
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                Clock::now().time_since_epoch());
  at_ = loop_now;
}

void WallAnchor::refresh(TimePoint loop_now) {
  if (loop_now - at_ > std::chrono::seconds(1)) reset(loop_now);
}

std::chrono::system_clock::time_point WallAnchor::wall(TimePoint t) const {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(t.time_since_epoch()) +
      offset_);
}

uint64_t WallAnchor::unix_nanos(TimePoint t) const {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(wall(t).time_since_epoch()).count();
  return ns > 0 ? static_cast<uint64_t>(ns) : 0;
}

}  // namespace h2mesh
