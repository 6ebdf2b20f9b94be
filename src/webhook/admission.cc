#include "webhook/admission.h"

namespace h2mesh::webhook {
namespace {

using Json = inject::Json;

constexpr std::string_view kApiVersion = "admission.k8s.io/v1";

const Json* member(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string string_at(const Json& j, const char* key) {
  const Json* m = member(j, key);
  return m && m->is_string() ? m->get<std::string>() : std::string();
}

// The AdmissionReview that allows the request, with `patch` (a JSON Patch) when not empty and
// `warnings` (shown by kubectl) when given.
std::string answer(const std::string& uid, const std::string& patch, const std::string& warning) {
  Json response = Json::object();
  response["uid"] = uid;
  response["allowed"] = true;
  if (!patch.empty()) {
    response["patchType"] = "JSONPatch";
    response["patch"] = base64_encode(patch);
  }
  if (!warning.empty()) response["warnings"] = Json::array({warning});
  Json review = Json::object();
  review["apiVersion"] = kApiVersion;
  review["kind"] = "AdmissionReview";
  review["response"] = std::move(response);
  return review.dump();
}

Review finish(Review r, const std::string& patch = {}, const std::string& warning = {}) {
  r.response = answer(r.uid, patch, warning);
  return r;
}

Review invalid(Review r, std::string why) {
  r.result = ReviewResult::Invalid;
  r.detail = std::move(why);
  return finish(std::move(r));
}

std::string pod_name(const Json& pod, const std::string& ns) {
  const Json* meta = member(pod, "metadata");
  std::string name = meta ? string_at(*meta, "name") : std::string();
  if (name.empty() && meta) {
    name = string_at(*meta, "generateName");
    if (!name.empty()) name += "*";
  }
  return (ns.empty() ? std::string("?") : ns) + "/" + (name.empty() ? "?" : name);
}

std::string annotation(const Json& pod, std::string_view key) {
  const Json* meta = member(pod, "metadata");
  const Json* annotations = meta ? member(*meta, "annotations") : nullptr;
  if (!annotations || !annotations->is_object()) return std::string();
  auto it = annotations->find(std::string(key));
  return it != annotations->end() && it->is_string() ? it->get<std::string>() : std::string();
}

Review decide(Json& doc, const NamespaceLabels& namespaces, const inject::Options& options) {
  Review r;
  const Json* request = member(doc, "request");
  if (request && request->is_object()) r.uid = string_at(*request, "uid");
  if (!doc.is_object()) return invalid(std::move(r), "the body is not a JSON object");
  if (string_at(doc, "kind") != "AdmissionReview")
    return invalid(std::move(r), "not an AdmissionReview (kind '" + string_at(doc, "kind") + "')");
  if (string_at(doc, "apiVersion") != kApiVersion) {
    return invalid(std::move(r), "AdmissionReview version '" + string_at(doc, "apiVersion") +
                                     "' (only " + std::string(kApiVersion) + ")");
  }
  if (!request || !request->is_object()) return invalid(std::move(r), "no request");
  if (r.uid.empty()) return invalid(std::move(r), "the request has no uid");
  const Json* kind = member(*request, "kind");
  if (!kind || string_at(*kind, "group") != "" || string_at(*kind, "version") != "v1" ||
      string_at(*kind, "kind") != "Pod" || !string_at(*request, "subResource").empty()) {
    std::string what = kind ? string_at(*kind, "kind") : std::string();
    return invalid(std::move(r), "not a Pod (" + (what.empty() ? "no kind" : what) + ")");
  }
  const std::string ns = string_at(*request, "namespace");
  Json* pod = nullptr;
  if (auto it = doc["request"].find("object"); it != doc["request"].end()) pod = &*it;
  if (!pod || !pod->is_object()) return invalid(std::move(r), "the request has no Pod object");
  r.pod = pod_name(*pod, ns);
  if (const std::string op = string_at(*request, "operation"); op != "CREATE") {
    r.result = ReviewResult::NotSelected;
    r.detail = "operation " + (op.empty() ? std::string("?") : op) + " (only CREATE is mutated)";
    return finish(std::move(r));
  }
  if (const Json* meta = member(*pod, "metadata"); meta && !meta->is_object())
    return invalid(std::move(r), "the Pod's metadata is not an object");
  if (const Json* spec = member(*pod, "spec"); !spec || !spec->is_object())
    return invalid(std::move(r), "the Pod has no spec");

  const std::string wanted = annotation(*pod, inject::kInjectAnnotation);
  if (wanted == "disabled") {
    r.result = ReviewResult::Skipped;
    r.detail = std::string(inject::kInjectAnnotation) + ": disabled";
    return finish(std::move(r));
  }
  if (wanted != "enabled") {
    if (!namespaces.synced()) {
      r.result = ReviewResult::NotSelected;
      r.unsynced = true;
      r.detail = "the namespaces are not listed yet: admitted without the sidecar";
      return finish(std::move(r));
    }
    const auto* labels = namespaces.labels(ns);
    bool enabled = false;
    if (labels) {
      auto it = labels->find(std::string(kNamespaceLabel));
      enabled = it != labels->end() && it->second == "enabled";
    }
    if (!enabled) {
      r.result = ReviewResult::NotSelected;
      r.detail = labels ? "namespace " + ns + " is not labelled " + std::string(kNamespaceLabel) +
                              "=enabled"
                        : "namespace " + ns + " is not known";
      return finish(std::move(r));
    }
  }
  // A dry run (kubectl --dry-run=server) is patched like the real request: the webhook has no
  // side effects (sideEffects: None), and the dry run's output then shows the pod the real
  // create would make, sidecar included.
  // The namespace's label h2mesh.io/mtls-mode sets the inbound mode of its pods (a pod's own
  // annotation wins; a label value other than strict or permissive is ignored).
  inject::Options effective = options;
  if (const auto* labels = namespaces.synced() ? namespaces.labels(ns) : nullptr) {
    auto it = labels->find(std::string(inject::kMtlsModeAnnotation));
    if (it != labels->end() && (it->second == "strict" || it->second == "permissive"))
      effective.mtls_mode = it->second;
  }
  Json injected = *pod;
  auto outcome = inject::inject_pod(injected, effective);
  if (!outcome) {
    r.result = ReviewResult::Error;
    r.detail = outcome.error().message;
    return finish(std::move(r), {}, "h2mesh: sidecar not injected: " + r.detail);
  }
  switch (outcome->outcome) {
    case inject::Outcome::AlreadyInjected:
      r.result = ReviewResult::AlreadyInjected;
      r.detail = "already injected";
      return finish(std::move(r));
    case inject::Outcome::Skipped:
      r.result = ReviewResult::Skipped;
      r.detail = outcome->reason;
      return finish(std::move(r), {}, "h2mesh: sidecar not injected: " + r.detail);
    case inject::Outcome::Injected:
      break;
  }
  r.result = ReviewResult::Injected;
  return finish(std::move(r), Json::diff(*pod, injected).dump());
}

}  // namespace

const char* review_result_name(ReviewResult result) {
  switch (result) {
    case ReviewResult::Injected:
      return "injected";
    case ReviewResult::AlreadyInjected:
      return "already_injected";
    case ReviewResult::Skipped:
      return "skipped";
    case ReviewResult::NotSelected:
      return "not_selected";
    case ReviewResult::Invalid:
      return "invalid";
    case ReviewResult::Error:
      return "error";
  }
  return "error";
}

Review review(std::string_view body, const NamespaceLabels& namespaces,
              const inject::Options& options) {
  // No exceptions (allow_exceptions = false): a malformed document parses as "discarded".
  Json doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    Review r;
    return invalid(std::move(r), "the body is not JSON");
  }
  try {
    return decide(doc, namespaces, options);
  } catch (const std::exception& e) {
    // nlohmann throws on type errors (e.g. dump() of invalid UTF-8 in a string): input from the
    // network is answered, never allowed to end the process.
    Review r;
    return invalid(std::move(r), std::string("unreadable request: ") + e.what());
  }
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (rest == 2) v |= uint8_t(bytes[i + 1]) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace h2mesh::webhook
