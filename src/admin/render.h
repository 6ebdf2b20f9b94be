#pragma once

#include <string>

#include "cluster/registry.h"
#include "config/config.h"
#include "proxy/mesh_table.h"
#include "proxy/stats.h"

namespace h2mesh::admin {

// Prometheus text exposition format (version 0.0.4) of the summed worker counters.
using HealthView = std::map<std::string, std::map<std::string, cluster::HostHealth>>;

// `mesh` (mesh mode, else null): the Services' clusters get `service` and `namespace` labels.
std::string render_metrics(const proxy::WorkerStats& stats, const HealthView& health,
                           const config::Config& config, const proxy::MeshTable* mesh = nullptr);

// /clusters: every cluster with its endpoints and their counters, as JSON.
// In mesh mode every Service port follows, with its Service, namespace and host counts.
std::string render_clusters_json(const proxy::WorkerStats& stats, const HealthView& health,
                                 const config::Config& config,
                                 const proxy::MeshTable* mesh = nullptr);

}  // namespace h2mesh::admin
