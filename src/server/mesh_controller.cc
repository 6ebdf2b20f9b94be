#include "server/mesh_controller.h"

#include "common/log.h"

namespace h2mesh::server {

std::string mesh_cluster_name(const discovery::MeshService& service) {
  return service.service + "." + service.namespace_ + ":" + std::to_string(service.port);
}

namespace {
// A dual-stack Service's slices list every pod once per family. Calls go to the family of the
// Service's primary cluster IP (spec.ipFamilies[0]), as kube-proxy keeps each family to its
// own: each pod is one endpoint, not two. A Service whose slices have none of that family (not
// seen in practice) keeps them all.
std::vector<cluster::DiscoveredEndpoint> same_family_endpoints(const discovery::MeshService& s) {
  if (s.cluster_ips.empty()) return s.endpoints;
  const bool v6 = s.cluster_ips.front().is_ipv6();
  std::vector<cluster::DiscoveredEndpoint> out;
  for (const auto& ep : s.endpoints)
    if (ep.address.is_ipv6() == v6) out.push_back(ep);
  return out.empty() ? s.endpoints : out;
}
}  // namespace

MeshController::MeshController(net::EventLoop& loop, std::shared_ptr<const config::Config> config,
                               Publish publish)
    : loop_(loop),
      config_(std::move(config)),
      publish_(std::move(publish)),
      registry_(loop, {}) {
  registry_.set_quiet(true);
  registry_.set_publish([this](cluster::ClusterSnapshotPtr snapshot) {
    on_snapshot(std::move(snapshot));
  });
  // Workers start with an empty table: every connection is relayed until the map arrives.
  auto empty = std::make_shared<proxy::MeshTable>();
  empty->config = config_;
  table_ = std::move(empty);
}

MeshController::~MeshController() = default;

void MeshController::start() { start_watcher(); }

void MeshController::start_watcher() {
  const config::Mesh& mesh = config_->mesh;
  discovery::ServiceMapWatcher::Settings settings;
  settings.kubeconfig = mesh.kubeconfig;
  settings.namespaces = mesh.namespaces;
  settings.backoff_base = std::chrono::duration_cast<Duration>(mesh.backoff_base);
  settings.backoff_max = std::chrono::duration_cast<Duration>(mesh.backoff_max);
  watcher_ = std::make_unique<discovery::ServiceMapWatcher>(
      loop_, settings,
      [this](std::shared_ptr<const discovery::ServiceMap> map) { apply(std::move(map)); });
  watcher_->start();
}

void MeshController::set_config(std::shared_ptr<const config::Config> config) {
  const config::Mesh& before = config_->mesh;
  const config::Mesh& after = config->mesh;
  const bool rewatch = before.kubeconfig != after.kubeconfig ||
                       before.namespaces != after.namespaces ||
                       before.backoff_base != after.backoff_base ||
                       before.backoff_max != after.backoff_max;
  config_ = std::move(config);
  for (auto& [name, entry] : services_) configure(name, entry);
  schedule_publish();
  if (rewatch && watcher_) {
    LOG_INFO("mesh: the API watch settings changed; watching again");
    start_watcher();  // the last map stays in use until the new watch delivers
  }
}

void MeshController::configure(const std::string& cluster, Entry& entry) {
  const discovery::MeshService& service = *entry.source;
  entry.settings = &config_->mesh.settings_for(service.service, service.namespace_);
  config::Cluster settings = entry.settings->cluster;
  settings.name = cluster;
  settings.discovery.type = config::DiscoveryType::Kubernetes;
  settings.discovery.kubernetes.namespace_ = service.namespace_;
  settings.discovery.kubernetes.service = service.service;
  settings.discovery.kubernetes.port = service.port_name;
  entry.route.reset();  // a new route carries the new settings (workers make a new context)
  registry_.upsert(settings);  // publishes (on_snapshot) when new or changed
  schedule_publish();
}

void MeshController::apply(std::shared_ptr<const discovery::ServiceMap> map) {
  std::map<std::string, std::shared_ptr<const discovery::MeshService>> next;
  for (const auto& service : map->services) next.emplace(mesh_cluster_name(*service), service);
  size_t added = 0, changed = 0, removed = 0;
  for (auto it = services_.begin(); it != services_.end();) {
    if (next.count(it->first)) {
      ++it;
      continue;
    }
    registry_.remove(it->first);
    it = services_.erase(it);
    ++removed;
  }
  for (const auto& [name, service] : next) {
    auto [it, inserted] = services_.try_emplace(name);
    Entry& entry = it->second;
    if (!inserted && entry.source == service) continue;  // the same object: unchanged
    const bool addresses_changed =
        !entry.source || entry.source->cluster_ips != service->cluster_ips;
    entry.source = service;
    if (inserted) {
      configure(name, entry);
      ++added;
    } else {
      ++changed;
      if (addresses_changed) entry.route.reset();
    }
    registry_.set_endpoints(name, same_family_endpoints(*service));
    if (!entry.route) schedule_publish();
  }
  map_ = std::move(map);
  if (added || removed) {
    LOG_INFO("mesh: %zu Service port(s) (+%zu -%zu, %zu changed)", services_.size(), added,
             removed, changed);
  }
  schedule_publish();
}

void MeshController::on_snapshot(cluster::ClusterSnapshotPtr snapshot) {
  auto it = services_.find(snapshot->settings.name);
  if (it == services_.end()) return;  // removed: the table leaves it out
  it->second.snapshot = std::move(snapshot);
  it->second.route.reset();
  schedule_publish();
}

void MeshController::schedule_publish() {
  if (publish_pending_) return;
  publish_pending_ = true;
  loop_.defer([this] {
    publish_pending_ = false;
    publish();
  });
}

void MeshController::publish() {
  auto table = std::make_shared<proxy::MeshTable>();
  table->config = config_;
  table->version = ++version_;
  table->by_cluster.reserve(services_.size());
  for (auto& [name, entry] : services_) {
    if (!entry.snapshot) continue;  // its first snapshot is on its way
    if (!entry.route) {
      auto route = std::make_shared<proxy::MeshRoute>();
      route->cluster = name;
      route->service = entry.source->service;
      route->namespace_ = entry.source->namespace_;
      route->snapshot = entry.snapshot;
      route->settings = entry.settings;
      route->http2_declared =
          proxy::declares_http2(entry.source->port_name, entry.source->app_protocol);
      entry.route = std::move(route);
    }
    table->by_cluster.emplace(name, entry.route);
    for (const auto& ip : entry.source->cluster_ips) {  // each with the Service port
      if (auto key = net::AddressKey::from(ip)) table->by_address.emplace(*key, entry.route);
    }
  }
  table_ = table;
  if (publish_) publish_(std::move(table));
}

bool MeshController::report_outlier(const std::string& cluster, const std::string& host) {
  if (!registry_.contains(cluster)) return false;
  registry_.report_outlier(cluster, host);
  return true;
}

bool MeshController::synced(std::string* why) const {
  if (map_) return true;
  *why = "mesh: no Service map from the Kubernetes API yet" +
         (watcher_ ? ": " + watcher_->last_error() : std::string());
  return false;
}

}  // namespace h2mesh::server
