#include "proxy/router.h"

namespace h2mesh::proxy {

const config::Route* Router::match(std::string_view authority, std::string_view path) const {
  for (const auto& route : routes_) {
    if (!route.match) return &route;
    const auto& m = *route.match;
    if (!m.authority.empty() && m.authority != authority) continue;
    if (!m.path.empty() && m.path != path) continue;
    if (!m.prefix.empty() && !path.starts_with(m.prefix)) continue;
    return &route;
  }
  return nullptr;
}

}  // namespace h2mesh::proxy
