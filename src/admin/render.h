#pragma once

#include <string>

#include "cluster/registry.h"
#include "config/config.h"
#include "discovery/service_map_watcher.h"
#include "proxy/mesh_table.h"
#include "proxy/stats.h"

namespace h2mesh::admin {

// Prometheus text exposition format (version 0.0.4) of the summed worker counters.
using HealthView = std::map<std::string, std::map<std::string, cluster::HostHealth>>;

// `mesh` (mesh mode, else null): the Services' clusters get `service` and `namespace` labels.
// `api` (mesh mode, once the watch started): the counters of the Service map's watch of the
// Kubernetes API, one series per collection.
std::string render_metrics(const proxy::WorkerStats& stats, const HealthView& health,
                           const config::Config& config, const proxy::MeshTable* mesh = nullptr,
                           const discovery::ServiceMapWatcher::Counters* api = nullptr);

// /clusters: every cluster with its endpoints and their counters, as JSON.
// In mesh mode every Service port follows, with its Service, namespace and host counts.
std::string render_clusters_json(const proxy::WorkerStats& stats, const HealthView& health,
                                 const config::Config& config,
                                 const proxy::MeshTable* mesh = nullptr);

// An endpoint's state, as /clusters and the dashboard show it: "removed" (no longer in the
// cluster's endpoints), "unhealthy" (its active health check fails: this wins over an ejection),
// "ejected" (outlier detection), "reconnecting" (its pool waits before connecting again after a
// failed connect) or "available". `health` may be null (no health check, no ejection).
const char* endpoint_state(bool in_snapshot, bool in_backoff, const cluster::HostHealth* health);

}  // namespace h2mesh::admin
