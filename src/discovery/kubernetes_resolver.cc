// Kubernetes discovery of one cluster: the discovery.k8s.io/v1 EndpointSlices of one Service,
// listed and watched by a k8s::ListWatch (k8s_list_watch.h: connection, resume, 410, backoff),
// cached per slice, and reported as a complete endpoint set whenever the union changes.

#include "common/log.h"
#include "discovery/k8s_http.h"
#include "discovery/k8s_list_watch.h"
#include "discovery/k8s_slices.h"
#include "discovery/resolver.h"

namespace h2mesh::discovery {
namespace {

class KubernetesResolver final : public Resolver, private k8s::ListWatch::Handler {
 public:
  KubernetesResolver(net::EventLoop& loop, const config::Cluster& cluster, OnUpdate on_update)
      : cluster_(cluster.name),
        settings_(cluster.discovery.kubernetes),
        on_update_(std::move(on_update)),
        cache_(settings_.port),
        list_watch_(loop,
                    k8s::ListWatch::Settings{"cluster " + cluster.name, settings_.kubeconfig,
                                             settings_.backoff_base, settings_.backoff_max},
                    *this) {}

  void start() override { list_watch_.start(); }
  bool synced() const override { return list_watch_.synced(); }
  std::string last_error() const override { return list_watch_.last_error(); }

 private:
  // ---- k8s::ListWatch::Handler --------------------------------------------------------------

  Result<k8s::Collection> collection(const k8s::Credentials& creds) override {
    if (settings_.service.empty())
      return make_error(ErrorCode::InvalidArgument, "cluster " + cluster_ + " names no service");
    const std::string& ns = !settings_.namespace_.empty() ? settings_.namespace_
                            : !creds.namespace_.empty()   ? creds.namespace_
                                                          : std::string("default");
    LOG_INFO(
        "kubernetes: cluster %s follows the EndpointSlices of service %s/%s (port %s) from %s "
        "with the credentials of %s",
        cluster_.c_str(), ns.c_str(), settings_.service.c_str(),
        settings_.port.empty() ? "(the only one)" : settings_.port.c_str(), creds.server.c_str(),
        creds.origin.c_str());
    return k8s::Collection{"/apis/discovery.k8s.io/v1/namespaces/" + k8s::url_encode(ns) +
                               "/endpointslices?labelSelector=" +
                               k8s::url_encode("kubernetes.io/service-name=" + settings_.service),
                           "EndpointSlice", "endpointslices.discovery.k8s.io",
                           "in namespace " + ns};
  }

  Result<k8s::ListMeta> list_page(std::string_view body, bool first) override {
    auto page = k8s::parse_slice_list(body);
    if (!page) return page.error();
    if (first) listed_.clear();
    for (auto& s : page->items) listed_.push_back(std::move(s));
    return k8s::ListMeta{std::move(page->resource_version), std::move(page->continue_token)};
  }

  Result<k8s::WatchEventHead> apply(std::string_view line) override {
    auto ev = k8s::parse_watch_event(line);
    if (!ev) return ev.error();
    if (ev->type == k8s::WatchEventType::Added || ev->type == k8s::WatchEventType::Modified ||
        ev->type == k8s::WatchEventType::Deleted) {
      LOG_DEBUG("kubernetes: %s slice %s at resourceVersion %s", k8s::watch_event_name(ev->type),
                ev->slice.key.c_str(), ev->resource_version.c_str());
      cache_.apply(*ev);
    }
    return static_cast<k8s::WatchEventHead&&>(std::move(*ev));
  }

  void on_listed(bool first) override {
    k8s::SliceList list;
    list.items.swap(listed_);
    cache_.reset(list);
    log_problems();
    publish(true);
    LOG_INFO("kubernetes: cluster %s %s: %zu endpoint(s) in %zu slice(s) at resourceVersion %s",
             cluster_.c_str(), first ? "synced" : "listed again", published_.size(),
             cache_.slice_count(), list_watch_.resource_version().c_str());
  }

  void on_changed() override {
    log_problems();
    publish(false);
  }

  // ---- results ------------------------------------------------------------------------------

  void publish(bool always) {
    auto endpoints = cache_.endpoints();
    if (!always && endpoints == published_) return;
    published_ = endpoints;
    size_t ready = 0, fallback = 0;
    for (const auto& e : endpoints) {
      ready += e.ready;
      fallback += e.ready && e.terminating;
    }
    LOG_DEBUG("kubernetes: cluster %s: %zu endpoint(s), %zu ready", cluster_.c_str(),
              endpoints.size(), ready);
    if (fallback > 0)
      LOG_INFO(
          "kubernetes: cluster %s: no endpoint is ready; %zu terminating endpoint(s) that "
          "still serve get the calls",
          cluster_.c_str(), fallback);
    on_update_(std::move(endpoints));
  }

  void log_problems() {
    for (const auto& p : cache_.take_problems())
      LOG_WARN("kubernetes: cluster %s: %s", cluster_.c_str(), p.c_str());
  }

  const std::string cluster_;
  const config::KubernetesDiscovery settings_;
  OnUpdate on_update_;
  k8s::SliceCache cache_;
  std::vector<k8s::EndpointSlice> listed_;  // the pages of the LIST in progress
  std::vector<cluster::DiscoveredEndpoint> published_;
  k8s::ListWatch list_watch_;  // last: its callbacks use the members above
};

}  // namespace

std::unique_ptr<Resolver> make_kubernetes_resolver(net::EventLoop& loop,
                                                   const config::Cluster& cluster,
                                                   Resolver::OnUpdate on_update) {
  return std::make_unique<KubernetesResolver>(loop, cluster, std::move(on_update));
}

}  // namespace h2mesh::discovery
