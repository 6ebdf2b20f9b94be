#include "discovery/service_map.h"

#include <algorithm>

#include "common/log.h"

namespace h2mesh::discovery {
namespace {

// The namespace part of a "namespace/name" key.
std::string namespace_of(const std::string& key) { return key.substr(0, key.find('/')); }

}  // namespace

void ServiceMapBuilder::replace_services(const std::string& namespace_,
                                         std::vector<k8s::Service> items) {
  // services_ is ordered by namespace first: one namespace is one run of it.
  auto it = namespace_.empty() ? services_.begin() : services_.lower_bound(Name{namespace_, ""});
  while (it != services_.end() && (namespace_.empty() || it->first.first == namespace_)) {
    dirty_.insert(it->first);
    it = services_.erase(it);
  }
  for (auto& s : items) {
    if (!namespace_.empty() && s.namespace_ != namespace_) continue;
    Name name{s.namespace_, s.name};
    dirty_.insert(name);
    services_[name] = std::move(s);
  }
}

void ServiceMapBuilder::replace_slices(const std::string& namespace_,
                                       std::vector<k8s::EndpointSlice> items) {
  std::vector<std::string> gone;
  for (const auto& [key, owner] : slice_owner_)
    if (namespace_.empty() || owner.first == namespace_) gone.push_back(key);
  for (const auto& key : gone) remove_slice(key);
  for (auto& s : items) {
    if (!namespace_.empty() && namespace_of(s.key) != namespace_) continue;
    put_slice(std::move(s));
  }
}

void ServiceMapBuilder::apply(const k8s::ServiceEvent& event) {
  Name name{event.service.namespace_, event.service.name};
  switch (event.type) {
    case k8s::WatchEventType::Added:
    case k8s::WatchEventType::Modified:
      services_[name] = event.service;
      dirty_.insert(name);
      return;
    case k8s::WatchEventType::Deleted:
      services_.erase(name);
      dirty_.insert(name);
      return;
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
  Name owner{namespace_of(slice.key), slice.service};
  slice.resource_version.clear();  // not needed once applied
  dirty_.insert(owner);
  slice_owner_.emplace(slice.key, owner);
  std::string key = slice.key;
  slices_[owner].insert_or_assign(std::move(key), std::move(slice));
}

void ServiceMapBuilder::remove_slice(const std::string& key) {
  auto owner = slice_owner_.find(key);
  if (owner == slice_owner_.end()) return;
  auto group = slices_.find(owner->second);
  if (group != slices_.end()) {
    group->second.erase(key);
    if (group->second.empty()) slices_.erase(group);
  }
  dirty_.insert(owner->second);
  slice_owner_.erase(owner);
}

ServiceMapBuilder::Entries ServiceMapBuilder::make_entries(const k8s::Service& service) const {
  Entries out;
  // Headless Services and ExternalName have nothing for kube-proxy to balance: a client dials a
  // pod (or an outside name) directly, and so do we.
  if (!service.has_cluster_ip()) return out;
  auto group = slices_.find(Name{service.namespace_, service.name});
  for (const auto& port : service.ports) {
    if (port.protocol != "TCP" || port.port == 0) continue;
    auto entry = std::make_shared<MeshService>();
    entry->namespace_ = service.namespace_;
    entry->service = service.name;
    entry->port_name = port.name;
    entry->port = port.port;
    entry->app_protocol = port.app_protocol;
    entry->cluster_ips.reserve(service.cluster_ips.size());
    for (const auto& ip : service.cluster_ips)
      entry->cluster_ips.push_back(config::SocketAddress{ip, port.port});
    if (group != slices_.end()) {
      std::vector<cluster::DiscoveredEndpoint> all;
      // The slices name their ports after the Service's ports, and give the target port (the
      // pods' port, which may differ per pod when targetPort is a name).
      for (const auto& [key, slice] : group->second) {
        if (auto target = k8s::select_port_by_name(slice.ports, port.name))
          k8s::append_slice_endpoints(slice, *target, &all);
      }
      entry->endpoints = k8s::merge_endpoints(std::move(all));
      entry->endpoints.shrink_to_fit();
    }
    out.push_back(std::move(entry));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->port < b->port; });
  return out;
}

// Redoes the entries of one Service; true when they differ from the last map's.
bool ServiceMapBuilder::rebuild(const Name& name) {
  auto service = services_.find(name);
  Entries fresh = service == services_.end() ? Entries() : make_entries(service->second);
  auto old = entries_.find(name);
  const Entries none;
  const Entries& before = old == entries_.end() ? none : old->second;
  bool changed = fresh.size() != before.size();
  for (size_t i = 0; i < fresh.size(); ++i) {
    auto same = std::find_if(before.begin(), before.end(),
                             [&](const auto& e) { return *e == *fresh[i]; });
    if (same != before.end()) {
      fresh[i] = *same;  // unchanged: the consumers keep what they made of it
      changed = changed || same - before.begin() != static_cast<ptrdiff_t>(i);
    } else {
      changed = true;
    }
  }
  if (fresh.empty()) {
    if (old != entries_.end()) entries_.erase(old);
  } else {
    entries_[name] = std::move(fresh);
  }
  return changed;
}

ServiceMapPtr ServiceMapBuilder::build(bool always) {
  bool changed = false;
  for (const auto& name : dirty_) changed = rebuild(name) || changed;
  dirty_.clear();
  if (!changed && !always) return nullptr;
  auto map = std::make_shared<ServiceMap>();
  map->version = ++version_;
  size_t count = 0;
  for (const auto& [name, entries] : entries_) count += entries.size();
  map->services.reserve(count);
  map->by_address.reserve(count);
  for (const auto& [name, entries] : entries_) {
    for (const auto& e : entries) {
      map->services.push_back(e);
      for (const auto& address : e->cluster_ips) {
        auto [it, inserted] = map->by_address.emplace(address.to_string(), e.get());
        // Cluster IPs are unique while the API server allocates them; two Services may still
        // claim one for a moment (one deleted, the other made, watch events in between).
        if (!inserted)
          LOG_DEBUG("kubernetes: service map: %s is claimed by %s/%s and %s/%s; the first wins",
                    it->first.c_str(), it->second->namespace_.c_str(),
                    it->second->service.c_str(), e->namespace_.c_str(), e->service.c_str());
      }
    }
  }
  return map;
}

}  // namespace h2mesh::discovery
