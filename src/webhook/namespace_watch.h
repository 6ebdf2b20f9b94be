#pragma once

// The webhook's view of the cluster's namespaces and their labels: a LIST+WATCH of
// /api/v1/namespaces (discovery's k8s::ListWatch: paging, resume, 410 Gone, backoff), on the
// main thread's loop. Until the first LIST is in, synced() is false and the webhook injects only
// pods that ask for it themselves.

#include <map>
#include <string>
#include <vector>

#include "discovery/k8s_list_watch.h"
#include "discovery/k8s_namespaces.h"
#include "webhook/admission.h"

namespace h2mesh::webhook {

class NamespaceWatch final : public NamespaceLabels, private discovery::k8s::ListWatch::Handler {
 public:
  // `kubeconfig`: "" for the pod's in-cluster credentials.
  NamespaceWatch(net::EventLoop& loop, const std::string& kubeconfig);
  ~NamespaceWatch() override;

  void start() { list_watch_.start(); }

  bool synced() const override { return list_watch_.synced(); }
  const std::map<std::string, std::string>* labels(const std::string& name) const override;

  size_t size() const { return namespaces_.size(); }
  const discovery::k8s::ListWatch::Counters& counters() const { return list_watch_.counters(); }
  const std::string& last_error() const { return list_watch_.last_error(); }

 private:
  Result<discovery::k8s::Collection> collection(
      const discovery::k8s::Credentials& credentials) override;
  Result<discovery::k8s::ListMeta> list_page(std::string_view body, bool first) override;
  Result<discovery::k8s::WatchEventHead> apply(std::string_view line) override;
  void on_listed(bool first) override;
  void on_changed() override {}

  std::map<std::string, std::map<std::string, std::string>> namespaces_;  // name -> labels
  std::vector<discovery::k8s::Namespace> listed_;  // the pages of the LIST in progress
  discovery::k8s::ListWatch list_watch_;
};

}  // namespace h2mesh::webhook
