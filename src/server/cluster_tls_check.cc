#include "server/cluster_tls_check.h"

#include "net/tls_client.h"

namespace h2mesh::server {

TlsCheckLines check_cluster_tls_files(const config::Config& config, std::time_t now) {
  TlsCheckLines lines;
  for (const config::Cluster& cluster : config.clusters) {
    if (!cluster.tls) continue;
    for (const auto& f :
         net::check_tls_files(cluster.tls->ca, cluster.tls->cert, cluster.tls->key, now)) {
      (f.error ? lines.errors : lines.warnings)
          .push_back("cluster " + cluster.name + ": " + f.message);
    }
  }
  return lines;
}

}  // namespace h2mesh::server
