#include "discovery/service_map.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace h2mesh::discovery {
namespace {

// The namespace part of a "namespace/name" key.
std::string namespace_of(const std::string& key) { return key.substr(0, key.find('/')); }

bool in_scope(const std::string& scope, const std::string& namespace_) {
  return scope.empty() || scope == namespace_;
}

}  // namespace

// ---- recording changes --------------------------------------------------------------------

void ServiceMapBuilder::set_service(const Name& name, k8s::Service service) {
  changed_services_.insert_or_assign(name, std::move(service));
}

void ServiceMapBuilder::replace_services(const std::string& namespace_,
                                         std::vector<k8s::Service> items) {
  // Every Service of the scope that has entries and is not listed any more is gone.
  std::set<Name> listed;
  for (const auto& s : items)
    if (in_scope(namespace_, s.namespace_)) listed.insert(Name{s.namespace_, s.name});
  for (const auto& [name, state] : services_)
    if (!state.entries.empty() && in_scope(namespace_, name.first) && !listed.count(name))
      set_service(name, k8s::Service());
  // Changes recorded since the last build for Services that are not listed are void too.
  for (auto& [name, service] : changed_services_)
    if (in_scope(namespace_, name.first) && !listed.count(name)) service = k8s::Service();

  if (namespace_.empty()) {
    services_per_namespace_.clear();
  } else {
    services_per_namespace_.erase(namespace_);
  }
  for (auto& s : items) {
    if (!in_scope(namespace_, s.namespace_)) continue;
    ++services_per_namespace_[s.namespace_];
    Name name{s.namespace_, s.name};
    set_service(name, std::move(s));
  }
}

void ServiceMapBuilder::replace_slices(const std::string& namespace_,
                                       std::vector<k8s::EndpointSlice> items) {
  std::vector<std::string> gone;
  for (const auto& [key, slice] : slices_)
    if (in_scope(namespace_, slice.owner->first)) gone.push_back(key);
  for (const auto& key : gone) remove_slice(key);
  for (auto& s : items) {
    if (!in_scope(namespace_, namespace_of(s.key))) continue;
    put_slice(std::move(s));
  }
}

void ServiceMapBuilder::apply(const k8s::ServiceEvent& event) {
  Name name{event.service.namespace_, event.service.name};
  switch (event.type) {
    case k8s::WatchEventType::Added:
      ++services_per_namespace_[name.first];
      set_service(name, event.service);
      return;
    case k8s::WatchEventType::Modified:
      set_service(name, event.service);
      return;
    case k8s::WatchEventType::Deleted: {
      auto count = services_per_namespace_.find(name.first);
      if (count != services_per_namespace_.end() && count->second > 0 && --count->second == 0)
        services_per_namespace_.erase(count);
      set_service(name, k8s::Service());
      return;
    }
    case k8s::WatchEventType::Bookmark:
    case k8s::WatchEventType::Error:
      return;
  }
}

void ServiceMapBuilder::apply(const k8s::WatchEvent& event) {
  switch (event.type) {
    case k8s::WatchEventType::Added:
    case k8s::WatchEventType::Modified:
      put_slice(event.slice);
      return;
    case k8s::WatchEventType::Deleted:
      remove_slice(event.slice.key);
      return;
    case k8s::WatchEventType::Bookmark:
    case k8s::WatchEventType::Error:
      return;
  }
}

void ServiceMapBuilder::put_slice(k8s::EndpointSlice slice) {
  remove_slice(slice.key);  // its Service may have changed (the label is not immutable)
  // A slice without the label is nobody's (made by hand for something else): not ours to use.
  if (slice.service.empty()) return;
  auto owner = services_.try_emplace(Name{namespace_of(slice.key), slice.service}).first;
  Slice cached;
  cached.owner = &owner->first;
  cached.v6 = slice.address_type == "IPv6";
  // FQDN slices (deprecated) give nothing to connect to; kube-proxy ignores them too.
  if (slice.address_type == "IPv4" || cached.v6) {
    cached.ports = std::move(slice.ports);
    cached.endpoints = std::move(slice.endpoints);
    // Pod names are for logs, and nothing downstream of the map reads them (the registry keeps
    // address, weight and zone): at tens of bytes per endpoint, twice (here and in the map), they
    // are not kept.
    for (auto& e : cached.endpoints) std::string().swap(e.name);
    cached.ports.shrink_to_fit();
    cached.endpoints.shrink_to_fit();
  }
  auto it = slices_.insert_or_assign(std::move(slice.key), std::move(cached)).first;
  owner->second.slices.push_back(&it->first);
  changed_slices_.insert(owner->first);
}

void ServiceMapBuilder::remove_slice(const std::string& key) {
  auto it = slices_.find(key);
  if (it == slices_.end()) return;
  auto owner = services_.find(*it->second.owner);
  changed_slices_.insert(owner->first);
  auto& keys = owner->second.slices;
  keys.erase(std::remove(keys.begin(), keys.end(), &it->first), keys.end());
  if (keys.empty() && owner->second.entries.empty()) services_.erase(owner);
  slices_.erase(it);
}

size_t ServiceMapBuilder::service_count() const {
  size_t n = 0;
  for (const auto& [ns, count] : services_per_namespace_) n += count;
  return n;
}

// ---- building -----------------------------------------------------------------------------

ServiceMapBuilder::Entries ServiceMapBuilder::make_entries(
    const Name& name, const std::vector<std::string>& cluster_ips,
    const std::vector<k8s::ServicePort>& ports) const {
  Entries out;
  // The slices of the Service in key order: which of two entries for one address wins does not
  // depend on the order the slices arrived in.
  std::vector<const std::string*> keys;
  if (auto state = services_.find(name); state != services_.end()) keys = state->second.slices;
  std::sort(keys.begin(), keys.end(), [](const auto* a, const auto* b) { return *a < *b; });
  for (const auto& port : ports) {
    if (port.protocol != "TCP" || port.port == 0) continue;
    // The API server refuses a Service with one port twice; should one come anyway, the first
    // stays, so that a Service port is one entry (one cluster for the consumers).
    if (std::any_of(out.begin(), out.end(), [&](const auto& e) { return e->port == port.port; }))
      continue;
    auto entry = std::make_shared<MeshService>();
    entry->namespace_ = name.first;
    entry->service = name.second;
    entry->port_name = port.name;
    entry->port = port.port;
    entry->app_protocol = port.app_protocol;
    entry->cluster_ips.reserve(cluster_ips.size());
    for (const auto& ip : cluster_ips)
      entry->cluster_ips.push_back(config::SocketAddress{ip, port.port});
    std::vector<cluster::DiscoveredEndpoint> all;
    // The slices name their ports after the Service's ports, and give the target port (the
    // pods' port, which may differ per pod when targetPort is a name).
    for (const std::string* key : keys) {
      const Slice& slice = slices_.at(*key);
      if (auto target = k8s::select_port_by_name(slice.ports, port.name))
        k8s::append_endpoints(slice.endpoints, slice.v6, *target, &all);
    }
    entry->endpoints = k8s::merge_endpoints(std::move(all));
    entry->endpoints.shrink_to_fit();
    out.push_back(std::move(entry));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->port < b->port; });
  return out;
}

// Redoes the entries of one Service; true when they differ from the last map's.
bool ServiceMapBuilder::rebuild(const Name& name) {
  auto state = services_.find(name);
  const Entries none;
  const Entries& before = state == services_.end() ? none : state->second.entries;
  Entries fresh;
  if (auto changed = changed_services_.find(name); changed != changed_services_.end()) {
    // Headless Services and ExternalName have nothing for kube-proxy to balance: a client dials
    // a pod (or an outside name) directly, and so do we.
    const k8s::Service& s = changed->second;
    if (s.has_cluster_ip()) fresh = make_entries(name, s.cluster_ips, s.ports);
  } else if (!before.empty()) {
    // Only the slices changed: the Service is what the last map says it is.
    std::vector<std::string> ips;
    for (const auto& a : before.front()->cluster_ips) ips.push_back(a.host);
    std::vector<k8s::ServicePort> ports;
    for (const auto& e : before)
      ports.push_back(k8s::ServicePort{e->port_name, "TCP", e->port, e->app_protocol});
    fresh = make_entries(name, ips, ports);
  }
  bool changed = fresh.size() != before.size();
  for (size_t i = 0; i < fresh.size(); ++i) {
    auto same =
        std::find_if(before.begin(), before.end(), [&](const auto& e) { return *e == *fresh[i]; });
    if (same != before.end()) {
      fresh[i] = *same;  // unchanged: the consumers keep what they made of it
      changed = changed || same - before.begin() != static_cast<ptrdiff_t>(i);
    } else {
      changed = true;
    }
  }
  if (state == services_.end()) {
    if (!fresh.empty()) services_[name].entries = std::move(fresh);
  } else if (fresh.empty() && state->second.slices.empty()) {
    services_.erase(state);  // nothing left to keep
  } else {
    state->second.entries = std::move(fresh);
  }
  return changed;
}

ServiceMapPtr ServiceMapBuilder::build(bool always) {
  bool changed = false;
  for (const auto& [name, service] : changed_services_) changed = rebuild(name) || changed;
  for (const auto& name : changed_slices_)
    if (!changed_services_.count(name)) changed = rebuild(name) || changed;
  changed_services_.clear();
  changed_slices_.clear();
  if (!changed && !always) return nullptr;
  auto map = std::make_shared<ServiceMap>();
  map->version = ++version_;
  size_t count = 0;
  for (const auto& [name, state] : services_) count += state.entries.size();
  map->services.reserve(count);
  map->by_address.reserve(count);
  for (const auto& [name, state] : services_) {
    for (const auto& e : state.entries) {
      map->services.push_back(e);
      for (const auto& address : e->cluster_ips) {
        auto key = ServiceAddress::from(address);
        if (!key) continue;  // the parser keeps only IP literals
        auto [it, inserted] = map->by_address.emplace(*key, e.get());
        // Cluster IPs are unique while the API server allocates them; two Services may still
        // claim one for a moment (one deleted, the other made, watch events in between).
        if (!inserted)
          LOG_DEBUG("kubernetes: service map: %s is claimed by %s/%s and %s/%s; the first wins",
                    address.to_string().c_str(), it->second->namespace_.c_str(),
                    it->second->service.c_str(), e->namespace_.c_str(), e->service.c_str());
      }
    }
  }
  return map;
}

}  // namespace h2mesh::discovery
