#pragma once

#include <memory>
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
  // Position of a route match() returned in the listener's routes.
  size_t index_of(const config::Route& route) const {
    return static_cast<size_t>(&route - routes_.data());
  }

 private:
  std::vector<config::Route> routes_;
};

// A listener's configuration as the data path sees it. Immutable and shared by the worker's
// listener and every connection accepted under it: a reload gives new connections a new
// context while running calls keep the rules (and route pointers) they started with.
struct ListenerContext {
  ListenerContext(std::shared_ptr<const config::Config> cfg, size_t index)
      : config(std::move(cfg)), listener(config->listeners[index]), router(listener.routes) {}
  std::shared_ptr<const config::Config> config;
  const config::Listener& listener;
  Router router;
};
using ListenerContextPtr = std::shared_ptr<const ListenerContext>;

}  // namespace h2mesh::proxy
