#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace h2mesh::proxy {

// Picks the route (cluster, timeout, retry policy) of a call from its :authority and :path.
// First match wins; nullptr when no route matches (the caller answers UNIMPLEMENTED). Immutable after construction.
class Router {
 public:
  explicit Router(const std::vector<config::Route>& routes) : routes_(routes) {}
  const config::Route* match(std::string_view authority, std::string_view path) const;

 private:
  std::vector<config::Route> routes_;
};

}  // namespace h2mesh::proxy
