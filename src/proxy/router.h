#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/retry.h"

namespace h2mesh::proxy {

// Picks the route (cluster, timeout, retry policy) of a call from its :authority and :path.
// First match wins; nullptr when no route matches (the caller answers UNIMPLEMENTED). Immutable after construction.
class Router {
 public:
  explicit Router(const std::vector<config::Route>& routes) : routes_(routes) {}
  const config::Route* match(std::string_view authority, std::string_view path) const;
  const std::vector<config::Route>& routes() const { return routes_; }
  // Position of `route`, which must be one of routes().
  size_t index_of(const config::Route* route) const {
    return static_cast<size_t>(route - routes_.data());
  }
  // Position of a route match() returned in the listener's routes.
  size_t index_of(const config::Route& route) const { return index_of(&route); }

 private:
  std::vector<config::Route> routes_;
};

// A listener's configuration as one worker's data path sees it. Made by the worker for itself
// (never shared with another thread) and shared by its listener and the connections accepted
// under it: a reload gives the listener and its connections a new context for the calls that
// start from then on, while calls in flight keep the context (and route pointers) they started
// with. Immutable but for the routes' retry budgets, which live as long as their routes: one per
// route, so reloads never add up budgets.
struct ListenerContext {
  ListenerContext(std::shared_ptr<const config::Config> cfg, size_t index)
      : config(std::move(cfg)),
        listener(config->listeners[index]),
        router(listener.routes),
        budgets_(listener.routes.size()) {}
  // A listener that is not in the config: the mesh's, one per Service and worker, made for the
  // Service's calls (its one route names the Service's cluster).
  ListenerContext(std::shared_ptr<const config::Config> cfg,
                  std::shared_ptr<const config::Listener> own)
      : config(std::move(cfg)),
        own_listener_(std::move(own)),
        listener(*own_listener_),
        router(listener.routes),
        budgets_(listener.routes.size()) {}
  std::shared_ptr<const config::Config> config;

 private:
  std::shared_ptr<const config::Listener> own_listener_;  // set when not one of config's

 public:
  const config::Listener& listener;
  Router router;

  // Worker thread. The retry budget of `route`, one of router's routes.
  RetryBudget& budget(const config::Route* route) const { return budgets_[router.index_of(route)]; }
  // Worker thread, before the context is used. Routes that `previous` (the context this one
  // replaces) also has, with the same match and cluster, keep their budget's window: a reload
  // does not hand out a fresh retry allowance.
  void inherit_budgets(const ListenerContext& previous);

 private:
  mutable std::vector<RetryBudget> budgets_;
};
using ListenerContextPtr = std::shared_ptr<const ListenerContext>;

}  // namespace h2mesh::proxy
