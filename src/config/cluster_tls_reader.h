#pragma once

// Reader of a cluster's `tls` map (TLS towards its endpoints). Internal to config/: only
// parser.cc and the config tests include this. Like the other readers, it reports every problem
// to `diag` and only writes fields whose value is valid. The files are not opened here: the proxy
// loads them when it first connects, and `h2mesh check` reads them (net/tls_files.h, as it does
// for listeners).

#include "config/config.h"
#include "config/yaml_reader.h"

namespace h2mesh::config {

void read_cluster_tls(const Located& value, ClusterTls* tls, Diagnostics* diag);

}  // namespace h2mesh::config
