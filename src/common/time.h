#pragma once

#include <chrono>

namespace h2mesh {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::nanoseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

}  // namespace h2mesh
