#pragma once

// Sidecar injection as a pure mutation of a pod spec (docs/injection.md): what `h2mesh inject`
// does to each workload of a manifest and what the admission webhook turns into a JSONPatch.
// One function for both, so a pod injected either way is the same pod. No I/O, no event loop:
// any thread may call it on a document it owns.
//
// Injection only adds (containers, a volume, an annotation) and never edits what the user wrote,
// so uninject_pod gives back the original object exactly.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace h2mesh::inject {

// Key order kept, so an injected manifest reads like the one the user wrote.
using Json = nlohmann::ordered_json;

inline constexpr std::string_view kVersion = H2MESH_VERSION_STRING;
inline constexpr std::string_view kDefaultImage = "h2mesh:" H2MESH_VERSION_STRING;

// The defaults of `h2mesh iptables install` and `h2mesh run --mesh`.
inline constexpr uint32_t kProxyUid = 1337;
inline constexpr uint16_t kOutboundPort = 15001;
inline constexpr uint16_t kAdminPort = 9901;
inline constexpr uint16_t kInboundPort = 15006;

inline constexpr std::string_view kInitName = "h2mesh-init";
inline constexpr std::string_view kProxyName = "h2mesh-proxy";
inline constexpr std::string_view kVolumeName = "h2mesh-kube-api";
// An emptyDir at h2mesh-init's /run: iptables' legacy backend takes its lock in
// /run/xtables.lock, which a read-only root filesystem would refuse.
inline constexpr std::string_view kXtablesVolumeName = "h2mesh-xtables-lock";
// Mesh mTLS: the pod's certificate, from cert-manager's csi-driver (a CSI inline volume: each
// pod gets its own key and certificate, with its SPIFFE ID as URI SAN, renewed by the driver) or
// from a Secret of its service account (MtlsSource::Secret). Same name and path either way.
inline constexpr std::string_view kTlsVolumeName = "h2mesh-tls";
inline constexpr std::string_view kTlsMountPath = "/var/run/h2mesh/tls";
inline constexpr std::string_view kMtlsAnnotation = "h2mesh.io/mtls";  // enabled | disabled
// strict | permissive: whether the pod's sidecar also takes clear text inbound (permissive, the
// sidecar's default) or only mesh mTLS. Also a namespace label for the webhook.
inline constexpr std::string_view kMtlsModeAnnotation = "h2mesh.io/mtls-mode";
// The name of a Secret (tls.crt, tls.key, ca.crt) in the pod's namespace to mount as the pod's
// mesh certificate, whatever Options::mtls_source says; implies mesh mTLS for the pod.
inline constexpr std::string_view kMtlsSecretAnnotation = "h2mesh.io/mtls-secret";
// What deploy/mesh-certs/make-mesh-certs.sh names a service account's Secret: prefix + name.
inline constexpr std::string_view kDefaultMtlsSecretPrefix = "h2mesh-mesh-tls-";

// Observability of the pod's sidecar (docs/observability.md, "In the mesh"): an OTLP/HTTP URL
// where it exports spans, or "off"; the share of new traces it samples ("0.1"); "stdout" for an
// access line per call on its stdout (the container's log), or "off"; and those lines' format,
// "json" (the sidecar's default) or "text".
inline constexpr std::string_view kOtlpEndpointAnnotation = "h2mesh.io/otlp-endpoint";
inline constexpr std::string_view kTraceSampleRatioAnnotation = "h2mesh.io/trace-sample-ratio";
inline constexpr std::string_view kAccessLogAnnotation = "h2mesh.io/access-log";
inline constexpr std::string_view kAccessLogFormatAnnotation = "h2mesh.io/access-log-format";

inline constexpr std::string_view kInjectAnnotation = "h2mesh.io/inject";  // enabled | disabled
inline constexpr std::string_view kStatusAnnotation = "h2mesh.io/inject-status";

// Where an injected pod's mesh certificate comes from, unless its h2mesh.io/mtls-secret
// annotation names a Secret.
enum class MtlsSource {
  Csi,     // cert-manager's csi-driver, from mtls_issuer (deploy/cert-manager/mesh-ca.yaml)
  Secret,  // the Secret <mtls_secret_prefix><the pod's serviceAccountName> of the pod's namespace
           // (deploy/mesh-certs/make-mesh-certs.sh writes them)
};

struct Options {
  std::string image{kDefaultImage};
  // A regular container (with postStart/preStop hooks) instead of a native sidecar, for
  // Kubernetes before 1.29.
  bool legacy_sidecar = false;
  // Mesh mTLS for pods that do not say otherwise (annotation h2mesh.io/mtls). On by default; a
  // cluster without cert-manager's csi-driver turns it off here (the pods would not start: their
  // certificate volume cannot be mounted).
  bool mtls = true;
  // The cert-manager issuer of the pods' certificates.
  std::string mtls_issuer = "h2mesh-mesh-ca";
  std::string mtls_issuer_kind = "ClusterIssuer";
  MtlsSource mtls_source = MtlsSource::Csi;
  // With MtlsSource::Secret: the Secret's name is this + the pod's service account's name (one
  // Secret per service account, as the SPIFFE ID is per service account). check_options says
  // whether it can begin a Secret name.
  std::string mtls_secret_prefix{kDefaultMtlsSecretPrefix};
  // The inbound mode for pods without an h2mesh.io/mtls-mode annotation: "strict",
  // "permissive", or "" (nothing set: the sidecar's default, permissive).
  std::string mtls_mode{};
  // Cluster-wide observability defaults, for pods without the annotations above (a pod's
  // annotation wins, "off" included). otlp_endpoint: where sidecars export spans ("": tracing
  // off); trace_sample_ratio: the share of new traces ("": the sidecar's default, all), only for
  // pods whose tracing is on; access_log: "stdout" or "" (off); access_log_format: "json",
  // "text" or "" (the sidecar's default, json), only for pods whose access log is on. As written
  // on the command line: check_options checks them.
  std::string otlp_endpoint{};
  std::string trace_sample_ratio{};
  std::string access_log{};
  std::string access_log_format{};
};

// "csi" or "secret" (the --mtls-source flag); false for anything else.
bool parse_mtls_source(std::string_view text, MtlsSource* out);

// Options a user set that no pod could be injected with: an error (InvalidArgument) whose message
// starts with the flag of `inject` and `webhook` that sets the option: "--mtls-secret-prefix:
// 'Certs_' cannot begin a Secret name (...)", "--otlp-endpoint: ...". The values are checked by
// the parsers `h2mesh run` reads them with. Called once when the options are read (the commands
// turn it into a usage error), so each inject_pod does not repeat it.
Result<void> check_options(const Options& options);

enum class Outcome {
  Injected,
  AlreadyInjected,  // the status annotation, or a container named h2mesh-proxy: left unchanged
  Skipped,          // left unchanged; `reason` says why
};

struct InjectOutcome {
  Outcome outcome = Outcome::Injected;
  std::string reason;  // for Skipped: "hostNetwork pod", "h2mesh.io/inject: disabled", ...
};

// Injects the sidecar into `pod`, an object with "metadata" and "spec" (a Pod, or a workload's
// pod template). Does not look at namespace labels: the caller decides whether to call it. With
// Skipped or AlreadyInjected, `pod` is unchanged. An error (InvalidArgument, message naming the
// field) for an annotation with a bad value or a pod the sidecar cannot work in (a container
// already on port 9901 or 15001, an app running as uid 1337, a foreign h2mesh-kube-api or
// h2mesh-xtables-lock volume, a service account whose Secret name would be invalid); `pod` is
// then unchanged too.
//
// With legacy_sidecar, a pod that runs to completion (restartPolicy Never or OnFailure, as every
// Job's, or owned by a Job) is Skipped: a regular sidecar container never exits.
Result<InjectOutcome> inject_pod(Json& pod, const Options& options);

// Removes what inject_pod added (found by name, in either mode). True when something was removed.
// An error only when `pod` is not an object.
Result<bool> uninject_pod(Json& pod);

// The pod templates of one Kubernetes object, pointers into `object` (valid while it is not
// resized): a Pod itself; spec.template of Deployment, StatefulSet, DaemonSet, ReplicaSet,
// ReplicationController and Job; spec.jobTemplate.spec.template of CronJob; for a List, those
// of its items (recursively). Empty for anything else.
std::vector<Json*> pod_templates(Json& object);

}  // namespace h2mesh::inject
