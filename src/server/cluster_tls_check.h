#pragma once

// `h2mesh check` for the files of clusters[].tls: every cluster's CA bundle, client certificate
// and key exist, parse, match and are not expired (net::check_tls_files).

#include <ctime>
#include <string>
#include <vector>

#include "config/config.h"

namespace h2mesh::server {

struct TlsCheckLines {
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

// One line per finding, each starting with "cluster NAME: ".
TlsCheckLines check_cluster_tls_files(const config::Config& config, std::time_t now);

}  // namespace h2mesh::server
