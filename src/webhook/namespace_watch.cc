#include "webhook/namespace_watch.h"

#include "common/log.h"

namespace h2mesh::webhook {

namespace k8s = discovery::k8s;

NamespaceWatch::NamespaceWatch(net::EventLoop& loop, const std::string& kubeconfig)
    : list_watch_(loop, k8s::ListWatch::Settings{"webhook, Namespaces", kubeconfig}, *this) {}

NamespaceWatch::~NamespaceWatch() = default;

const std::map<std::string, std::string>* NamespaceWatch::labels(const std::string& name) const {
  auto it = namespaces_.find(name);
  return it == namespaces_.end() ? nullptr : &it->second;
}

Result<k8s::Collection> NamespaceWatch::collection(const k8s::Credentials& creds) {
  LOG_INFO("webhook: following the Namespaces from %s with the credentials of %s",
           creds.server.c_str(), creds.origin.c_str());
  return k8s::Collection{"/api/v1/namespaces", "Namespace", "namespaces",
                         "cluster-wide (a ClusterRole)"};
}

Result<k8s::ListMeta> NamespaceWatch::list_page(std::string_view body, bool first) {
  if (first) listed_.clear();
  auto page = k8s::parse_namespace_list(body);
  if (!page) return page.error();
  for (auto& ns : page->items) listed_.push_back(std::move(ns));
  return k8s::ListMeta{std::move(page->resource_version), std::move(page->continue_token)};
}

Result<k8s::WatchEventHead> NamespaceWatch::apply(std::string_view line) {
  auto ev = k8s::parse_namespace_event(line);
  if (!ev) return ev.error();
  if (ev->type == k8s::WatchEventType::Added || ev->type == k8s::WatchEventType::Modified) {
    namespaces_[ev->namespace_.name] = std::move(ev->namespace_.labels);
    LOG_DEBUG("webhook: namespace %s %s", ev->namespace_.name.c_str(),
              k8s::watch_event_name(ev->type));
  } else if (ev->type == k8s::WatchEventType::Deleted) {
    namespaces_.erase(ev->namespace_.name);
  }
  return static_cast<k8s::WatchEventHead&&>(std::move(*ev));
}

void NamespaceWatch::on_listed(bool first) {
  namespaces_.clear();
  for (auto& ns : listed_) namespaces_[ns.name] = std::move(ns.labels);
  listed_ = {};
  size_t selected = 0;
  for (const auto& [name, labels] : namespaces_) {
    auto it = labels.find(std::string(kNamespaceLabel));
    selected += it != labels.end() && it->second == "enabled";
  }
  LOG_INFO("webhook: %zu namespace(s) %s, %zu labelled %s=enabled", namespaces_.size(),
           first ? "listed" : "listed again", selected, std::string(kNamespaceLabel).c_str());
}

}  // namespace h2mesh::webhook
