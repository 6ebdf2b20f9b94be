#include "proxy/mesh_table.h"

namespace h2mesh::proxy {

bool declares_http2(std::string_view port_name, std::string_view app_protocol) {
  if (!app_protocol.empty()) {
    return app_protocol == "grpc" || app_protocol == "h2c" || app_protocol == "http2" ||
           app_protocol == "kubernetes.io/h2c";
  }
  for (std::string_view prefix : {"grpc", "h2c", "http2"}) {
    if (port_name == prefix) return true;
    if (port_name.size() > prefix.size() + 1 && port_name.starts_with(prefix) &&
        port_name[prefix.size()] == '-')
      return true;
  }
  return false;
}

}  // namespace h2mesh::proxy
