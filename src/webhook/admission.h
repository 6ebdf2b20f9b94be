#pragma once

// The admission webhook's decision, as a pure function: an AdmissionReview request (the bytes
// the API server POSTs to /mutate) and what is known of the namespaces in, the AdmissionReview
// response out. Every answer allows the pod: the webhook only adds the sidecar, and a pod it
// cannot read or inject is better created without it (and reported) than refused, which is also
// what failurePolicy: Ignore does when the webhook is down (docs/webhook.md).
//
// Injection is chosen per pod: its namespace has the label h2mesh-injection=enabled, or the pod
// has the annotation h2mesh.io/inject: enabled; never with h2mesh.io/inject: disabled. The pod
// mutation itself is inject::inject_pod, the same as `h2mesh inject`; the patch is the RFC 6902
// difference between the pod as sent and the injected pod.

#include <map>
#include <string>
#include <string_view>

#include "inject/injector.h"

namespace h2mesh::webhook {

inline constexpr std::string_view kNamespaceLabel = "h2mesh-injection";  // = enabled

// What the webhook knows about namespaces (from its LIST+WATCH of /api/v1/namespaces).
class NamespaceLabels {
 public:
  virtual ~NamespaceLabels() = default;
  // False until the first LIST was applied: labels() knows nothing yet.
  virtual bool synced() const = 0;
  // The labels of namespace `name`; null when it is not known.
  virtual const std::map<std::string, std::string>* labels(const std::string& name) const = 0;
};

// One result per request; the metric h2mesh_webhook_requests_total{result=...} counts them.
enum class ReviewResult {
  Injected,         // answered with a patch
  AlreadyInjected,  // the pod has the sidecar (status annotation, or an h2mesh-proxy container)
  Skipped,          // selected, but not to be injected (inject: disabled, hostNetwork)
  NotSelected,      // neither the namespace label nor the pod annotation asks for injection
  Invalid,          // not an AdmissionReview v1 for a Pod we can read
  Error,            // the injector refused the pod (a bad annotation, a port conflict, ...)
};
inline constexpr size_t kReviewResults = 6;
const char* review_result_name(ReviewResult result);

struct Review {
  ReviewResult result = ReviewResult::Invalid;
  std::string uid;        // request.uid when readable ("" otherwise)
  std::string pod;        // "namespace/name" (generateName + "*" before the name is set), for logs
  std::string detail;     // why: for every result but Injected
  bool unsynced = false;  // not selected only because the namespaces are not known yet
  std::string response;   // the AdmissionReview to send (JSON), always allowed
};

// Decides and answers. Never throws, whatever the bytes.
Review review(std::string_view body, const NamespaceLabels& namespaces,
              const inject::Options& options);

// RFC 4648 base64 with padding (the AdmissionReview's patch field).
std::string base64_encode(std::string_view bytes);

}  // namespace h2mesh::webhook
