// The Service map's watcher: one k8s::ListWatch per collection (Services, EndpointSlices) and
// scope (cluster-wide, or each namespace of the list), all feeding one ServiceMapBuilder. Changes
// are not published as they come: a zero-delay timer runs once the loop iteration's I/O is done,
// so the events of one read (or of both collections) make one map.

#include "discovery/service_map_watcher.h"

#include <set>

#include "common/log.h"
#include "discovery/k8s_http.h"
#include "discovery/k8s_list_watch.h"

namespace h2mesh::discovery {

// One collection in one scope, fed to the builder.
class ServiceMapWatcher::Feed final : private k8s::ListWatch::Handler {
 public:
  enum class Kind { Services, EndpointSlices };

  // `scope`: a namespace, or "" for every namespace.
  Feed(ServiceMapWatcher& owner, Kind kind, const std::string& scope, const Settings& settings)
      : owner_(owner),
        kind_(kind),
        namespace_(scope),
        list_watch_(
            owner.loop_,
            k8s::ListWatch::Settings{std::string("service map, ") +
                                         (kind == Kind::Services ? "Services" : "EndpointSlices") +
                                         (scope.empty() ? "" : " of " + scope),
                                     settings.kubeconfig, settings.backoff_base,
                                     settings.backoff_max, settings.list_page_size},
            *this) {}

  void start() { list_watch_.start(); }
  bool synced() const { return list_watch_.synced(); }
  const std::string& last_error() const { return list_watch_.last_error(); }
  Kind kind() const { return kind_; }
  const k8s::ListWatch::Counters& counters() const { return list_watch_.counters(); }

 private:
  Result<k8s::Collection> collection(const k8s::Credentials& creds) override {
    const bool services = kind_ == Kind::Services;
    std::string base = services ? "/api/v1" : "/apis/discovery.k8s.io/v1";
    std::string plural = services ? "services" : "endpointslices";
    std::string path = namespace_.empty()
                           ? base + "/" + plural
                           : base + "/namespaces/" + k8s::url_encode(namespace_) + "/" + plural;
    if (kind_ == Kind::Services) {
      LOG_INFO(
          "kubernetes: service map follows the Services and EndpointSlices %s from %s with "
          "the credentials of %s",
          namespace_.empty() ? "of every namespace" : ("of namespace " + namespace_).c_str(),
          creds.server.c_str(), creds.origin.c_str());
    }
    return k8s::Collection{path, services ? "Service" : "EndpointSlice",
                           services ? "services" : "endpointslices.discovery.k8s.io",
                           namespace_.empty()
                               ? "cluster-wide (a ClusterRole), or name the namespaces to watch"
                               : "in namespace " + namespace_};
  }

  Result<k8s::ListMeta> list_page(std::string_view body, bool first) override {
    if (first) {
      listed_services_.clear();
      listed_slices_.clear();
    }
    if (kind_ == Kind::Services) {
      auto page = k8s::parse_service_list(body);
      if (!page) return page.error();
      for (auto& s : page->items) listed_services_.push_back(std::move(s));
      return k8s::ListMeta{std::move(page->resource_version), std::move(page->continue_token)};
    }
    auto page = k8s::parse_slice_list(body);
    if (!page) return page.error();
    for (auto& s : page->items) listed_slices_.push_back(std::move(s));
    return k8s::ListMeta{std::move(page->resource_version), std::move(page->continue_token)};
  }

  Result<k8s::WatchEventHead> apply(std::string_view line) override {
    if (kind_ == Kind::Services) {
      auto ev = k8s::parse_service_event(line);
      if (!ev) return ev.error();
      owner_.builder_.apply(*ev);
      LOG_DEBUG("kubernetes: service map: %s service %s", k8s::watch_event_name(ev->type),
                ev->service.key.c_str());
      return static_cast<k8s::WatchEventHead&&>(std::move(*ev));
    }
    auto ev = k8s::parse_watch_event(line);
    if (!ev) return ev.error();
    owner_.builder_.apply(*ev);
    LOG_DEBUG("kubernetes: service map: %s slice %s", k8s::watch_event_name(ev->type),
              ev->slice.key.c_str());
    return static_cast<k8s::WatchEventHead&&>(std::move(*ev));
  }

  void on_listed(bool first) override {
    if (kind_ == Kind::Services) {
      owner_.builder_.replace_services(namespace_, std::move(listed_services_));
    } else {
      owner_.builder_.replace_slices(namespace_, std::move(listed_slices_));
    }
    listed_services_ = {};
    listed_slices_ = {};
    LOG_INFO("kubernetes: service map: %s %s %s at resourceVersion %s",
             kind_ == Kind::Services ? "Services" : "EndpointSlices",
             namespace_.empty() ? "of every namespace" : ("of namespace " + namespace_).c_str(),
             first ? "listed" : "listed again", list_watch_.resource_version().c_str());
    owner_.changed();
  }
  void on_changed() override { owner_.changed(); }

  ServiceMapWatcher& owner_;
  const Kind kind_;
  const std::string namespace_;
  // The pages of the LIST in progress.
  std::vector<k8s::Service> listed_services_;
  std::vector<k8s::EndpointSlice> listed_slices_;
  k8s::ListWatch list_watch_;
};

ServiceMapWatcher::ServiceMapWatcher(net::EventLoop& loop, Settings settings, OnUpdate on_update)
    : loop_(loop), on_update_(std::move(on_update)), publish_timer_(loop, [this] { publish(); }) {
  // Each namespace once (an empty name is none); no namespace: one cluster-wide scope.
  std::set<std::string> scopes;
  for (const auto& ns : settings.namespaces)
    if (!ns.empty()) scopes.insert(ns);
  if (scopes.empty()) scopes.insert("");
  for (const auto& ns : scopes) {
    feeds_.push_back(std::make_unique<Feed>(*this, Feed::Kind::Services, ns, settings));
    feeds_.push_back(std::make_unique<Feed>(*this, Feed::Kind::EndpointSlices, ns, settings));
  }
}

ServiceMapWatcher::~ServiceMapWatcher() = default;

void ServiceMapWatcher::start() {
  for (auto& f : feeds_) f->start();
}

std::string ServiceMapWatcher::last_error() const {
  for (const auto& f : feeds_)
    if (!f->last_error().empty()) return f->last_error();
  return std::string();
}

ServiceMapWatcher::Counters ServiceMapWatcher::counters() const {
  Counters out;
  for (const auto& f : feeds_) {
    auto& c = f->kind() == Feed::Kind::Services ? out.services : out.endpoint_slices;
    const auto& in = f->counters();
    c.lists += in.lists;
    c.watches += in.watches;
    c.events += in.events;
    c.failures += in.failures;
    c.relists += in.relists;
  }
  out.maps_published = maps_published_;
  out.services_known = builder_.service_count();
  out.slices_known = builder_.slice_count();
  out.map_entries = current_ ? current_->services.size() : 0;
  return out;
}

void ServiceMapWatcher::changed() {
  if (!publish_timer_.armed()) publish_timer_.arm(Duration::zero());
}

void ServiceMapWatcher::publish() {
  // The first map waits for every collection: a map of Services without their endpoints (or the
  // other way round) would send calls to "no endpoint" for nothing.
  for (const auto& f : feeds_)
    if (!f->synced()) return;
  ServiceMapPtr map = builder_.build(/*always=*/current_ == nullptr);
  if (!map) return;
  const bool first = current_ == nullptr;
  current_ = map;
  ++maps_published_;
  size_t endpoints = 0;
  for (const auto& s : map->services) endpoints += s->endpoints.size();
  if (first) {
    LOG_INFO(
        "kubernetes: service map synced: %zu Service port(s) with %zu endpoint(s) from %zu "
        "Service(s) and %zu EndpointSlice(s)",
        map->services.size(), endpoints, builder_.service_count(), builder_.slice_count());
  } else {
    LOG_DEBUG("kubernetes: service map version %llu: %zu Service port(s) with %zu endpoint(s)",
              static_cast<unsigned long long>(map->version), map->services.size(), endpoints);
  }
  on_update_(std::move(map));
}

}  // namespace h2mesh::discovery
