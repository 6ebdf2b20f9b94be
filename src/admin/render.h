#pragma once

#include <string>

#include "cluster/registry.h"
#include "config/config.h"
#include "proxy/stats.h"

namespace h2mesh::admin {

// Prometheus text exposition format (version 0.0.4) of the summed worker counters.
using HealthView = std::map<std::string, std::map<std::string, cluster::HostHealth>>;

std::string render_metrics(const proxy::WorkerStats& stats, const HealthView& health,
                           const config::Config& config);

// /clusters: every cluster with its endpoints and their counters, as JSON.
std::string render_clusters_json(const proxy::WorkerStats& stats, const HealthView& health,
                                 const config::Config& config);

}  // namespace h2mesh::admin
