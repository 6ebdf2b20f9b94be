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

namespace {
bool same_route(const config::Route& a, const config::Route& b) {
  if (a.cluster != b.cluster || a.match.has_value() != b.match.has_value()) return false;
  if (!a.match) return true;
  return a.match->authority == b.match->authority && a.match->prefix == b.match->prefix &&
         a.match->path == b.match->path;
}
}  // namespace

void ListenerContext::inherit_budgets(const ListenerContext& previous) {
  const auto& now = router.routes();
  const auto& before = previous.router.routes();
  for (size_t i = 0; i < now.size(); ++i) {
    for (size_t j = 0; j < before.size(); ++j) {
      if (same_route(now[i], before[j])) {
        budgets_[i] = previous.budgets_[j];
        break;
      }
    }
  }
}

}  // namespace h2mesh::proxy
