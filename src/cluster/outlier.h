#pragma once

#include <cstddef>
#include <cstdint>

#include "common/time.h"
#include "config/config.h"

namespace h2mesh::cluster {

// The pure rules of passive outlier detection.

// May one more host be ejected, given how many of `total` already are?
bool may_eject(size_t ejected, size_t total, uint32_t max_ejection_percent);

// How long the `nth` ejection (1-based) of a host lasts: base × n, capped at max.
Duration ejection_duration(uint32_t nth, const config::OutlierDetection& settings);

}  // namespace h2mesh::cluster
