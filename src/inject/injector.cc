#include "inject/injector.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <regex>

#include "common/log.h"
#include "config/tracing_reader.h"
#include "mesh/iptables.h"

namespace h2mesh::inject {
namespace {

Error invalid(std::string message) {
  return make_error(ErrorCode::InvalidArgument, std::move(message));
}

std::string port_text(uint16_t port) { return std::to_string(port); }

// A Kubernetes object name such as a Secret's (RFC 1123 subdomain): at most 253 characters,
// dot-separated labels of lowercase letters, digits and '-' that start and end alphanumeric.
bool is_dns_subdomain(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view label = name.substr(start, end - start);
    if (label.empty() || !alnum(label.front()) || !alnum(label.back())) return false;
    for (char c : label)
      if (!alnum(c) && c != '-') return false;
    start = end + 1;
  }
  return true;
}

constexpr char kSubdomainRule[] =
    "a Secret name is lowercase letters, digits, '-' and '.', starts and ends with a letter or "
    "digit, at most 253 characters";

// The annotations map of `pod`, or null when there is none. An error when it is not a map.
Result<const Json*> annotations_of(const Json& pod) {
  auto metadata = pod.find("metadata");
  if (metadata == pod.end() || metadata->is_null()) return static_cast<const Json*>(nullptr);
  if (!metadata->is_object()) return invalid("metadata: not a map");
  auto annotations = metadata->find("annotations");
  if (annotations == metadata->end() || annotations->is_null())
    return static_cast<const Json*>(nullptr);
  if (!annotations->is_object()) return invalid("metadata.annotations: not a map");
  return &*annotations;
}

// Kubernetes quantities ("100m", "64Mi", "1.5", "2e3"), as a number of base units: enough to
// refuse what the API server would and to compare a request with its limit.
std::optional<long double> parse_quantity(const std::string& text) {
  static const std::regex kQuantity(
      R"(^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?$)");
  std::smatch m;
  if (text.size() > 64 || !std::regex_match(text, m, kQuantity)) return std::nullopt;
  long double value = std::stold(m[1].str());
  const std::string suffix = m[3].str();
  static const std::pair<const char*, long double> kScale[] = {{"Ki", 1024.0L},
                                                               {"Mi", 1048576.0L},
                                                               {"Gi", 1073741824.0L},
                                                               {"Ti", 1099511627776.0L},
                                                               {"Pi", 1125899906842624.0L},
                                                               {"Ei", 1152921504606846976.0L},
                                                               {"n", 1e-9L},
                                                               {"u", 1e-6L},
                                                               {"m", 1e-3L},
                                                               {"k", 1e3L},
                                                               {"M", 1e6L},
                                                               {"G", 1e9L},
                                                               {"T", 1e12L},
                                                               {"P", 1e15L},
                                                               {"E", 1e18L}};
  // "E" alone is exa; "E3" or "e-3" a decimal exponent.
  if (suffix.size() > 1 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    const char* digits = suffix.c_str() + 1;
    if (*digits == '+') ++digits;  // from_chars takes '-' but not '+'
    int exponent = 0;
    auto [end, ec] = std::from_chars(digits, suffix.c_str() + suffix.size(), exponent);
    if (ec != std::errc() || end != suffix.c_str() + suffix.size() || exponent > 30 ||
        exponent < -30)
      return std::nullopt;
    return value * std::pow(10.0L, exponent);
  }
  for (const auto& [name, scale] : kScale)
    if (suffix == name) return value * scale;
  return value;
}

// What the pod's h2mesh.io/ annotations ask for, validated.
struct PodSettings {
  bool disabled = false;
  std::optional<bool> mtls;  // the pod's h2mesh.io/mtls; unset: the options decide
  std::string mtls_mode;     // the pod's h2mesh.io/mtls-mode; "": the options decide
  std::string mtls_secret;   // the pod's h2mesh.io/mtls-secret; "": the options decide
  std::string skip_ports;    // as given, for h2mesh-init's flags
  std::string skip_cidrs;
  std::string opaque_ports;
  std::string log_level;
  Json resources;
  // The observability annotations as given ("off" included); nullopt: the options decide.
  std::optional<std::string> otlp_endpoint, trace_sample_ratio, access_log, access_log_format;
};

// What the sidecar's env says about spans and access lines, the pod's annotations over the
// options' defaults: empty strings for what stays off or at the sidecar's default.
struct Observability {
  std::string otlp_endpoint, trace_sample_ratio, access_log, access_log_format;
};

// An OTLP endpoint or sample ratio as `h2mesh run` reads it: "" when it is one, else why not.
std::string otlp_endpoint_problem(const std::string& url) {
  config::Tracing checked;
  std::string why;
  return config::parse_otlp_endpoint(url, &checked, &why) ? std::string() : why;
}

std::string sample_ratio_problem(const std::string& text) {
  double ratio = 0;
  std::string why;
  return config::parse_sample_ratio(text, &ratio, &why) ? std::string() : why;
}

// A file path would be written inside the sidecar's read-only root filesystem: only stdout
// (the container's log, what `kubectl logs` and node log collectors read) works.
constexpr char kAccessLogRule[] =
    "expected stdout or off (a file cannot be written in the sidecar's read-only root "
    "filesystem; the lines on stdout are the container's log)";
constexpr char kAccessLogFormatRule[] = "expected json or text";

Result<PodSettings> read_settings(const Json* annotations) {
  PodSettings s;
  s.resources = Json::object();
  s.resources["requests"] = Json::object({{"cpu", "20m"}, {"memory", "16Mi"}});
  s.resources["limits"] = Json::object({{"cpu", "1"}, {"memory", "64Mi"}});
  if (!annotations) return s;
  auto value_of = [&](std::string_view name) -> Result<std::optional<std::string>> {
    auto it = annotations->find(std::string(name));
    if (it == annotations->end() || it->is_null()) return std::optional<std::string>();
    if (!it->is_string())
      return invalid("annotation " + std::string(name) + ": the value must be a string (quote it)");
    return std::optional<std::string>(it->get<std::string>());
  };
  auto bad = [](std::string_view name, const std::string& value, const std::string& why) {
    return invalid("annotation " + std::string(name) + ": '" + value + "': " + why);
  };
  // An annotation that must be one of two words: nullopt when absent.
  auto one_of = [&](std::string_view name, std::string_view a, std::string_view b,
                    const std::string& rule) -> Result<std::optional<std::string>> {
    auto v = value_of(name);
    if (v.ok() && *v && **v != a && **v != b) return bad(name, **v, rule);
    return v;
  };
  auto inject = one_of(kInjectAnnotation, "enabled", "disabled", "expected enabled or disabled");
  if (!inject.ok()) return inject.error();
  if (*inject) s.disabled = **inject == "disabled";
  auto mtls = one_of(kMtlsAnnotation, "enabled", "disabled", "expected enabled or disabled");
  if (!mtls.ok()) return mtls.error();
  if (*mtls) s.mtls = **mtls == "enabled";
  auto mode = one_of(kMtlsModeAnnotation, "strict", "permissive", "expected strict or permissive");
  if (!mode.ok()) return mode.error();
  if (*mode) s.mtls_mode = **mode;
  auto secret = value_of(kMtlsSecretAnnotation);
  if (!secret.ok()) return secret.error();
  if (*secret) {
    if (!is_dns_subdomain(**secret)) return bad(kMtlsSecretAnnotation, **secret, kSubdomainRule);
    // A pod that names its certificate's Secret wants mesh mTLS; also saying it does not is a
    // mistake to point out rather than to settle silently either way.
    if (s.mtls == false)
      return invalid("annotation " + std::string(kMtlsSecretAnnotation) + ": '" + **secret +
                     "': names the pod's mesh certificate, but " + std::string(kMtlsAnnotation) +
                     " is disabled (remove one of them)");
    s.mtls = true;
    s.mtls_secret = **secret;
  }
  auto ports = value_of("h2mesh.io/skip-outbound-ports");
  if (!ports.ok()) return ports.error();
  if (*ports) {
    auto parsed = mesh::parse_port_list(**ports);
    if (!parsed.ok()) return bad("h2mesh.io/skip-outbound-ports", **ports, parsed.error().message);
    s.skip_ports = **ports;
  }
  auto cidrs = value_of("h2mesh.io/skip-outbound-cidrs");
  if (!cidrs.ok()) return cidrs.error();
  if (*cidrs) {
    auto parsed = mesh::parse_cidr_list(**cidrs);
    if (!parsed.ok()) return bad("h2mesh.io/skip-outbound-cidrs", **cidrs, parsed.error().message);
    s.skip_cidrs = **cidrs;
  }
  auto opaque = value_of("h2mesh.io/opaque-ports");
  if (!opaque.ok()) return opaque.error();
  if (*opaque) {
    auto parsed = mesh::parse_port_list(**opaque);
    if (!parsed.ok()) return bad("h2mesh.io/opaque-ports", **opaque, parsed.error().message);
    s.opaque_ports = **opaque;
  }
  auto level = value_of("h2mesh.io/log-level");
  if (!level.ok()) return level.error();
  if (*level) {
    log::Level parsed;
    if (!log::parse_level(**level, &parsed))
      return bad("h2mesh.io/log-level", **level, "expected debug, info, warn or error");
    s.log_level = **level;
  }
  auto endpoint = value_of(kOtlpEndpointAnnotation);
  if (!endpoint.ok()) return endpoint.error();
  if (*endpoint) {
    if (**endpoint != "off") {
      if (std::string why = otlp_endpoint_problem(**endpoint); !why.empty())
        return bad(kOtlpEndpointAnnotation, **endpoint, why + " (or off)");
    }
    s.otlp_endpoint = **endpoint;
  }
  auto ratio = value_of(kTraceSampleRatioAnnotation);
  if (!ratio.ok()) return ratio.error();
  if (*ratio) {
    if (std::string why = sample_ratio_problem(**ratio); !why.empty())
      return invalid("annotation " + std::string(kTraceSampleRatioAnnotation) + ": " + why);
    s.trace_sample_ratio = **ratio;
  }
  auto access = one_of(kAccessLogAnnotation, "stdout", "off", kAccessLogRule);
  if (!access.ok()) return access.error();
  s.access_log = *access;
  auto format = one_of(kAccessLogFormatAnnotation, "json", "text", kAccessLogFormatRule);
  if (!format.ok()) return format.error();
  s.access_log_format = *format;
  for (const char* resource : {"cpu", "memory"}) {
    const std::string request_name = std::string("h2mesh.io/proxy-") + resource + "-request";
    const std::string limit_name = std::string("h2mesh.io/proxy-") + resource + "-limit";
    for (const auto& [name, section] :
         {std::pair{request_name, "requests"}, {limit_name, "limits"}}) {
      auto v = value_of(name);
      if (!v.ok()) return v.error();
      if (!*v) continue;
      if (!parse_quantity(**v))
        return bad(name, **v,
                   "not a Kubernetes quantity (e.g. " +
                       std::string(resource == std::string("cpu") ? "100m or 2" : "64Mi") + ")");
      s.resources[section][resource] = **v;
    }
    const std::string request = s.resources["requests"][resource].get<std::string>();
    const std::string limit = s.resources["limits"][resource].get<std::string>();
    if (*parse_quantity(request) > *parse_quantity(limit))
      return invalid("annotation " + request_name + ": '" + request + "' is above the proxy's " +
                     resource + " limit '" + limit + "' (set " + limit_name + " too)");
  }
  return s;
}

// Every container list of the pod spec that exists, with its field name.
std::vector<std::pair<const char*, const Json*>> container_lists(const Json& spec) {
  std::vector<std::pair<const char*, const Json*>> lists;
  for (const char* field : {"initContainers", "containers", "ephemeralContainers"}) {
    auto it = spec.find(field);
    if (it != spec.end() && it->is_array()) lists.emplace_back(field, &*it);
  }
  return lists;
}

bool has_container_named(const Json& spec, std::string_view name) {
  for (const auto& [field, list] : container_lists(spec))
    for (const Json& c : *list)
      if (c.is_object() && c.value("name", Json()) == std::string(name)) return true;
  return false;
}

bool runs_as_proxy_uid(const Json& object) {
  auto sc = object.find("securityContext");
  if (sc == object.end() || !sc->is_object()) return false;
  auto uid = sc->find("runAsUser");
  return uid != sc->end() && uid->is_number_integer() && uid->get<int64_t>() == kProxyUid;
}

// The pod setups in which the sidecar could not do its job: an error naming the field.
Result<void> check_conflicts(const Json& spec) {
  if (runs_as_proxy_uid(spec))
    return invalid("spec.securityContext.runAsUser: " + std::to_string(kProxyUid) +
                   " is the proxy's uid: the app's traffic would escape interception");
  for (const auto& [field, list] : container_lists(spec)) {
    for (size_t i = 0; i < list->size(); ++i) {
      const Json& c = (*list)[i];
      if (!c.is_object()) continue;
      const std::string where = "spec." + std::string(field) + "[" + std::to_string(i) + "]";
      if (runs_as_proxy_uid(c))
        return invalid(where + ".securityContext.runAsUser: " + std::to_string(kProxyUid) +
                       " is the proxy's uid: this container's traffic would escape interception");
      auto ports = c.find("ports");
      if (ports == c.end() || !ports->is_array()) continue;
      for (size_t p = 0; p < ports->size(); ++p) {
        const Json& port = (*ports)[p];
        if (!port.is_object()) continue;
        auto number = port.find("containerPort");
        if (number == port.end() || !number->is_number_integer()) continue;
        const int64_t n = number->get<int64_t>();
        if (n == kAdminPort || n == kOutboundPort || n == kInboundPort)
          return invalid(where + ".ports[" + std::to_string(p) +
                         "].containerPort: " + std::to_string(n) + " is the proxy's " +
                         (n == kAdminPort     ? "admin"
                          : n == kInboundPort ? "inbound"
                                              : "outbound") +
                         " port");
      }
    }
  }
  auto volumes = spec.find("volumes");
  if (volumes != spec.end() && volumes->is_array()) {
    for (size_t i = 0; i < volumes->size(); ++i) {
      const Json& v = (*volumes)[i];
      if (!v.is_object()) continue;
      for (std::string_view ours : {kVolumeName, kXtablesVolumeName, kTlsVolumeName})
        if (v.value("name", Json()) == std::string(ours))
          return invalid("spec.volumes[" + std::to_string(i) + "].name: " + std::string(ours) +
                         " is h2mesh's volume, but the pod has no " +
                         std::string(kStatusAnnotation) + " annotation");
    }
  }
  return {};
}

// A pod that is meant to finish: its legacy sidecar would keep it running for ever.
bool runs_to_completion(const Json& pod, const Json& spec) {
  const Json policy = spec.value("restartPolicy", Json());
  if (policy == "Never" || policy == "OnFailure") return true;
  auto metadata = pod.find("metadata");
  if (metadata == pod.end() || !metadata->is_object()) return false;
  auto owners = metadata->find("ownerReferences");
  if (owners == metadata->end() || !owners->is_array()) return false;
  for (const Json& owner : *owners)
    if (owner.is_object() && owner.value("kind", Json()) == "Job") return true;
  return false;
}

bool mtls_on(const Options& options, const PodSettings& s) { return s.mtls.value_or(options.mtls); }

// The pod's annotations over the options. A sample ratio for a pod whose tracing is off is an
// error: the sidecar would refuse it (`run --mesh --trace-sample-ratio` without an endpoint).
Result<Observability> observability(const Options& options, const PodSettings& s) {
  Observability o;
  o.otlp_endpoint = s.otlp_endpoint.value_or(options.otlp_endpoint);
  if (o.otlp_endpoint == "off") o.otlp_endpoint.clear();
  if (!o.otlp_endpoint.empty())
    o.trace_sample_ratio = s.trace_sample_ratio.value_or(options.trace_sample_ratio);
  else if (s.trace_sample_ratio)
    return invalid("annotation " + std::string(kTraceSampleRatioAnnotation) + ": '" +
                   *s.trace_sample_ratio + "': tracing is off for this pod (set " +
                   std::string(kOtlpEndpointAnnotation) + ", or --otlp-endpoint for every pod)");
  o.access_log = s.access_log.value_or(options.access_log);
  if (o.access_log == "off") o.access_log.clear();
  // The same for the access log's format: the sidecar refuses a format without a log.
  if (!o.access_log.empty())
    o.access_log_format = s.access_log_format.value_or(options.access_log_format);
  else if (s.access_log_format)
    return invalid("annotation " + std::string(kAccessLogFormatAnnotation) + ": '" +
                   *s.access_log_format + "': the access log is off for this pod (set " +
                   std::string(kAccessLogAnnotation) + ": stdout, or --access-log stdout for "
                   "every pod)");
  return o;
}

// The Secret the pod's mesh certificate comes from, or "" for cert-manager's csi-driver. With
// MtlsSource::Secret it is derived from the service account the pod runs as, which the webhook
// sees on the pod (the API server's ServiceAccount admission has set it by then) and which is
// what the certificate's SPIFFE ID names: "default" when the spec names none.
Result<std::string> mtls_secret_name(const Json& spec, const Options& options,
                                     const PodSettings& s) {
  if (!mtls_on(options, s)) return std::string();
  if (!s.mtls_secret.empty()) return s.mtls_secret;
  if (options.mtls_source != MtlsSource::Secret) return std::string();
  std::string account = "default";
  const char* from = "serviceAccountName";
  // serviceAccount is the deprecated spelling, used by Kubernetes when serviceAccountName is
  // not set.
  for (const char* field : {"serviceAccount", "serviceAccountName"}) {
    auto it = spec.find(field);
    if (it == spec.end() || it->is_null()) continue;
    if (!it->is_string()) return invalid("spec." + std::string(field) + ": not a string");
    if (it->get<std::string>().empty()) continue;
    account = it->get<std::string>();
    from = field;
  }
  const std::string name = options.mtls_secret_prefix + account;
  if (!is_dns_subdomain(name))
    return invalid("spec." + std::string(from) + ": '" + account +
                   "': the pod's mesh certificate Secret would be named '" + name + "', but " +
                   kSubdomainRule);
  return name;
}

Json init_container(const Options& options, const PodSettings& s) {
  Json args = Json::array({"iptables", "install", "--proxy-uid", std::to_string(kProxyUid),
                           "--outbound-port", port_text(kOutboundPort), "--admin-port",
                           port_text(kAdminPort)});
  if (!s.skip_ports.empty()) {
    args.push_back("--skip-outbound-ports");
    args.push_back(s.skip_ports);
  }
  if (!s.skip_cidrs.empty()) {
    args.push_back("--skip-outbound-cidrs");
    args.push_back(s.skip_cidrs);
  }
  if (mtls_on(options, s)) {
    // Arriving TCP goes to the sidecar too: it terminates the peers' mTLS.
    args.push_back("--inbound-port");
    args.push_back(port_text(kInboundPort));
  }
  Json c = Json::object();
  c["name"] = kInitName;
  c["image"] = options.image;
  c["imagePullPolicy"] = "IfNotPresent";
  c["args"] = std::move(args);
  c["resources"] = Json::object({{"requests", Json::object({{"cpu", "10m"}, {"memory", "16Mi"}})},
                                 {"limits", Json::object({{"cpu", "100m"}, {"memory", "32Mi"}})}});
  // Root for iptables, but only the two capabilities it needs.
  Json sc = Json::object();
  sc["runAsUser"] = 0;
  sc["runAsNonRoot"] = false;
  sc["privileged"] = false;
  sc["allowPrivilegeEscalation"] = false;
  sc["readOnlyRootFilesystem"] = true;
  sc["capabilities"] = Json::object(
      {{"drop", Json::array({"ALL"})}, {"add", Json::array({"NET_ADMIN", "NET_RAW"})}});
  c["securityContext"] = std::move(sc);
  c["volumeMounts"] = Json::array(
      {Json::object({{"name", kXtablesVolumeName}, {"mountPath", "/run"}})});
  return c;
}

Json probe(int period, int failures) {
  Json p = Json::object();
  p["httpGet"] = Json::object({{"path", "/ready"}, {"port", kAdminPort}});
  p["periodSeconds"] = period;
  p["timeoutSeconds"] = 1;
  p["failureThreshold"] = failures;
  return p;
}

Json field_env(const char* name, const char* path) {
  Json e = Json::object();
  e["name"] = name;
  e["valueFrom"] =
      Json::object({{"fieldRef", Json::object({{"apiVersion", "v1"}, {"fieldPath", path}})}});
  return e;
}

Json value_env(const char* name, const std::string& value) {
  return Json::object({{"name", name}, {"value", value}});
}

Json proxy_container(const Options& options, const PodSettings& s, const Observability& o) {
  Json c = Json::object();
  c["name"] = kProxyName;
  c["image"] = options.image;
  c["imagePullPolicy"] = "IfNotPresent";
  // A native sidecar: an init container that keeps running, started before the next init
  // container and stopped after the last app container.
  if (!options.legacy_sidecar) c["restartPolicy"] = "Always";
  c["args"] = Json::array({"run", "--mesh"});
  Json env = Json::array();
  env.push_back(field_env("POD_NAMESPACE", "metadata.namespace"));
  env.push_back(field_env("POD_NAME", "metadata.name"));
  // On every address: the kubelet probes the pod IP.
  env.push_back(value_env("H2MESH_ADMIN", "0.0.0.0:" + port_text(kAdminPort)));
  env.push_back(value_env("H2MESH_OUTBOUND_PORT", port_text(kOutboundPort)));
  if (!s.opaque_ports.empty()) env.push_back(value_env("H2MESH_OPAQUE_PORTS", s.opaque_ports));
  if (!s.log_level.empty()) env.push_back(value_env("H2MESH_LOG_LEVEL", s.log_level));
  if (mtls_on(options, s)) {
    const std::string dir(kTlsMountPath);
    env.push_back(value_env("H2MESH_INBOUND_PORT", port_text(kInboundPort)));
    env.push_back(value_env("H2MESH_MESH_CERT", dir + "/tls.crt"));
    env.push_back(value_env("H2MESH_MESH_KEY", dir + "/tls.key"));
    env.push_back(value_env("H2MESH_MESH_CA", dir + "/ca.crt"));
    const std::string& mode = s.mtls_mode.empty() ? options.mtls_mode : s.mtls_mode;
    if (!mode.empty()) env.push_back(value_env("H2MESH_MTLS_MODE", mode));
  }
  if (!o.otlp_endpoint.empty()) env.push_back(value_env("H2MESH_OTLP_ENDPOINT", o.otlp_endpoint));
  if (!o.trace_sample_ratio.empty())
    env.push_back(value_env("H2MESH_TRACE_SAMPLE_RATIO", o.trace_sample_ratio));
  if (!o.access_log.empty()) env.push_back(value_env("H2MESH_ACCESS_LOG", o.access_log));
  if (!o.access_log_format.empty())
    env.push_back(value_env("H2MESH_ACCESS_LOG_FORMAT", o.access_log_format));
  c["env"] = std::move(env);
  c["ports"] = Json::array({Json::object(
      {{"name", "h2mesh-admin"}, {"containerPort", kAdminPort}, {"protocol", "TCP"}})});
  if (options.legacy_sidecar) {
    // The kubelet starts the next container only when this hook has returned: the app starts
    // after the proxy is ready. On stop, every container gets SIGTERM at once; holding the
    // proxy's back lets the app finish its calls through it.
    c["lifecycle"] = Json::object(
        {{"postStart",
          Json::object(
              {{"exec", Json::object({{"command", Json::array({"h2mesh", "wait-ready", "--admin",
                                                               "127.0.0.1:" + port_text(kAdminPort),
                                                               "--timeout", "120s"})}})}})},
         {"preStop",
          Json::object({{"exec", Json::object({{"command", Json::array({"sleep", "5"})}})}})}});
  }
  c["startupProbe"] = probe(1, 120);
  c["readinessProbe"] = probe(5, 3);
  c["resources"] = s.resources;
  Json sc = Json::object();
  sc["runAsUser"] = kProxyUid;
  sc["runAsGroup"] = kProxyUid;
  sc["runAsNonRoot"] = true;
  sc["privileged"] = false;
  sc["allowPrivilegeEscalation"] = false;
  sc["readOnlyRootFilesystem"] = true;
  sc["capabilities"] = Json::object({{"drop", Json::array({"ALL"})}});
  c["securityContext"] = std::move(sc);
  c["volumeMounts"] =
      Json::array({Json::object({{"name", kVolumeName},
                                 {"mountPath", "/var/run/secrets/kubernetes.io/serviceaccount"},
                                 {"readOnly", true}})});
  if (mtls_on(options, s))
    c["volumeMounts"].push_back(Json::object(
        {{"name", kTlsVolumeName}, {"mountPath", kTlsMountPath}, {"readOnly", true}}));
  return c;
}

// The pod's mesh certificate. From a Secret (`secret` not empty): the kubelet updates the files
// when the Secret changes (a symlink swap the sidecar's reload follows). The files are root's
// unless the pod sets fsGroup, and the proxy runs as uid and gid 1337 without capabilities, so
// they must be world-readable (0444) for it to read the key; that does not widen who can read
// it, because only the proxy container mounts the volume. Setting the pod's fsGroup instead
// would change what the user wrote and make the kubelet chown every volume of the pod.
// From cert-manager's csi-driver otherwise: it makes a key in the pod's volume and has it signed
// by the mesh issuer, with the pod's SPIFFE ID (the driver fills in the pod's namespace and
// service account), readable by the proxy's group, renewed before it expires.
Json tls_volume(const Options& options, const std::string& secret) {
  if (!secret.empty()) {
    Json source = Json::object({{"secretName", secret}, {"defaultMode", 0444}});
    return Json::object({{"name", kTlsVolumeName}, {"secret", std::move(source)}});
  }
  Json attributes = Json::object();
  attributes["csi.cert-manager.io/issuer-name"] = options.mtls_issuer;
  attributes["csi.cert-manager.io/issuer-kind"] = options.mtls_issuer_kind;
  attributes["csi.cert-manager.io/uri-sans"] =
      "spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}";
  attributes["csi.cert-manager.io/common-name"] = "${SERVICE_ACCOUNT_NAME}.${POD_NAMESPACE}";
  attributes["csi.cert-manager.io/key-usages"] = "server auth,client auth";
  attributes["csi.cert-manager.io/fs-group"] = std::to_string(kProxyUid);
  Json csi = Json::object(
      {{"driver", "csi.cert-manager.io"}, {"readOnly", true}, {"volumeAttributes", attributes}});
  return Json::object({{"name", kTlsVolumeName}, {"csi", std::move(csi)}});
}

// The proxy's own copy of the service-account credentials, whether or not the pod automounts
// them (automountServiceAccountToken: false is common and must not break discovery).
Json kube_api_volume() {
  Json sources = Json::array();
  sources.push_back(Json::object(
      {{"serviceAccountToken", Json::object({{"path", "token"}, {"expirationSeconds", 3607}})}}));
  sources.push_back(Json::object(
      {{"configMap", Json::object({{"name", "kube-root-ca.crt"},
                                   {"items", Json::array({Json::object(
                                                 {{"key", "ca.crt"}, {"path", "ca.crt"}})})}})}}));
  sources.push_back(Json::object(
      {{"downwardAPI",
        Json::object(
            {{"items",
              Json::array({Json::object(
                  {{"path", "namespace"},
                   {"fieldRef", Json::object({{"apiVersion", "v1"},
                                              {"fieldPath", "metadata.namespace"}})}})})}})}}));
  return Json::object(
      {{"name", kVolumeName}, {"projected", Json::object({{"sources", std::move(sources)}})}});
}

// Sets object[key] = value, a new key placed just before `before` when that key exists (so
// initContainers reads above containers), else at the end.
void insert_key(Json& object, const std::string& key, Json value, const char* before) {
  if (object.contains(key)) {
    object[key] = std::move(value);
    return;
  }
  if (!before || !object.contains(before)) {
    object[key] = std::move(value);
    return;
  }
  Json rebuilt = Json::object();
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (it.key() == before) rebuilt[key] = std::move(value);
    rebuilt[it.key()] = std::move(it.value());
  }
  object = std::move(rebuilt);
}

Json prepend(const Json* list, std::vector<Json> first) {
  Json out = Json::array();
  for (Json& c : first) out.push_back(std::move(c));
  if (list)
    for (const Json& c : *list) out.push_back(c);
  return out;
}

// Removes the entries named `name` from spec[field]; the field too when that leaves it empty
// (injection created it). True when something was removed.
bool remove_named(Json& spec, const char* field, std::string_view name) {
  auto it = spec.find(field);
  if (it == spec.end() || !it->is_array()) return false;
  auto named = [&](const Json& entry) {
    return entry.is_object() && entry.value("name", Json()) == std::string(name);
  };
  if (std::none_of(it->begin(), it->end(), named)) return false;
  Json kept = Json::array();
  for (Json& entry : *it)
    if (!named(entry)) kept.push_back(std::move(entry));
  if (kept.empty())
    spec.erase(field);
  else
    *it = std::move(kept);
  return true;
}

}  // namespace

bool parse_mtls_source(std::string_view text, MtlsSource* out) {
  if (text == "csi") {
    *out = MtlsSource::Csi;
  } else if (text == "secret") {
    *out = MtlsSource::Secret;
  } else {
    return false;
  }
  return true;
}

Result<void> check_options(const Options& options) {
  // Any service account name appended must be able to make a valid name: the prefix followed by
  // a one-letter name must already be one.
  if (!is_dns_subdomain(options.mtls_secret_prefix + "a"))
    return invalid("--mtls-secret-prefix: '" + options.mtls_secret_prefix +
                   "' cannot begin a Secret name (" + kSubdomainRule + ")");
  if (!options.otlp_endpoint.empty()) {
    if (std::string why = otlp_endpoint_problem(options.otlp_endpoint); !why.empty())
      return invalid("--otlp-endpoint: '" + options.otlp_endpoint + "' " + why);
  }
  if (!options.trace_sample_ratio.empty()) {
    if (std::string why = sample_ratio_problem(options.trace_sample_ratio); !why.empty())
      return invalid("--trace-sample-ratio: " + why);
  }
  if (!options.access_log.empty() && options.access_log != "stdout")
    return invalid("--access-log: '" + options.access_log + "': only stdout (a file cannot be "
                   "written in the sidecar's read-only root filesystem)");
  if (!options.access_log_format.empty() && options.access_log_format != "json" &&
      options.access_log_format != "text")
    return invalid("--access-log-format: '" + options.access_log_format + "': " +
                   kAccessLogFormatRule);
  return {};
}

Result<InjectOutcome> inject_pod(Json& pod, const Options& options) {
  if (!pod.is_object()) return invalid("not a map");
  auto annotations = annotations_of(pod);
  if (!annotations.ok()) return annotations.error();
  auto spec_it = pod.find("spec");
  if (spec_it == pod.end() || !spec_it->is_object()) return invalid("spec: missing or not a map");
  const Json& spec = *spec_it;
  for (const auto& [field, list] : container_lists(spec))
    for (const Json& c : *list)
      if (!c.is_object()) return invalid("spec." + std::string(field) + ": an entry is not a map");
  if (*annotations && (*annotations)->contains(std::string(kStatusAnnotation)))
    return InjectOutcome{Outcome::AlreadyInjected,
                         "the pod has the " + std::string(kStatusAnnotation) + " annotation"};
  if (has_container_named(spec, kProxyName))
    return InjectOutcome{Outcome::AlreadyInjected,
                         "the pod has a container named " + std::string(kProxyName)};
  auto settings = read_settings(*annotations);
  if (!settings.ok()) return settings.error();
  auto observe = observability(options, *settings);
  if (!observe.ok()) return observe.error();
  if (settings->disabled)
    return InjectOutcome{Outcome::Skipped, std::string(kInjectAnnotation) + ": disabled"};
  if (spec.value("hostNetwork", Json()) == true)
    return InjectOutcome{Outcome::Skipped,
                         "hostNetwork pod (interception would rewrite the node's rules)"};
  if (options.legacy_sidecar && runs_to_completion(pod, spec))
    return InjectOutcome{Outcome::Skipped,
                         "the pod runs to completion (a Job's): a legacy sidecar container never "
                         "exits, so it would never complete; use native sidecars (no "
                         "--legacy-sidecar, Kubernetes 1.29 or later)"};
  if (auto conflict = check_conflicts(spec); !conflict.ok()) return conflict.error();
  auto secret = mtls_secret_name(spec, options, *settings);
  if (!secret.ok()) return secret.error();

  // Everything checked: from here on nothing fails, so an error never leaves a half-done pod.
  // (An ordered_json object is a vector: adding a key moves its values, so no reference into
  // `pod` is kept across one.)
  Json status = Json::object(
      {{"version", kVersion}, {"sidecar", options.legacy_sidecar ? "legacy" : "native"}});
  if (!pod.contains("metadata") || pod["metadata"].is_null())
    insert_key(pod, "metadata", Json::object(), "spec");
  Json& metadata = pod["metadata"];
  if (!metadata.contains("annotations") || metadata["annotations"].is_null())
    metadata["annotations"] = Json::object();
  metadata["annotations"][std::string(kStatusAnnotation)] = status.dump();
  Json& mutable_spec = pod["spec"];

  auto list_of = [&](const char* field) -> const Json* {
    auto it = mutable_spec.find(field);
    return it != mutable_spec.end() && it->is_array() ? &*it : nullptr;
  };
  if (options.legacy_sidecar) {
    insert_key(mutable_spec, "initContainers",
               prepend(list_of("initContainers"), {init_container(options, *settings)}),
               "containers");
    mutable_spec["containers"] =
        prepend(list_of("containers"), {proxy_container(options, *settings, *observe)});
  } else {
    insert_key(mutable_spec, "initContainers",
               prepend(list_of("initContainers"),
                       {init_container(options, *settings),
                        proxy_container(options, *settings, *observe)}),
               "containers");
  }
  Json& volumes = mutable_spec["volumes"];
  if (!volumes.is_array()) volumes = Json::array();
  volumes.push_back(kube_api_volume());
  volumes.push_back(
      Json::object({{"name", kXtablesVolumeName}, {"emptyDir", Json::object()}}));
  if (mtls_on(options, *settings)) volumes.push_back(tls_volume(options, *secret));
  return InjectOutcome{Outcome::Injected, {}};
}

Result<bool> uninject_pod(Json& pod) {
  if (!pod.is_object()) return invalid("not a map");
  bool removed = false;
  auto metadata = pod.find("metadata");
  if (metadata != pod.end() && metadata->is_object()) {
    auto annotations = metadata->find("annotations");
    if (annotations != metadata->end() && annotations->is_object() &&
        annotations->erase(std::string(kStatusAnnotation)) > 0) {
      removed = true;
      // Injection created what is empty now (an empty map says nothing in Kubernetes).
      if (annotations->empty()) metadata->erase("annotations");
      if (metadata->empty()) pod.erase("metadata");
    }
  }
  auto spec = pod.find("spec");
  if (spec != pod.end() && spec->is_object()) {
    for (const char* field : {"initContainers", "containers"}) {
      removed = remove_named(*spec, field, kInitName) || removed;
      removed = remove_named(*spec, field, kProxyName) || removed;
    }
    removed = remove_named(*spec, "volumes", kVolumeName) || removed;
    removed = remove_named(*spec, "volumes", kXtablesVolumeName) || removed;
    removed = remove_named(*spec, "volumes", kTlsVolumeName) || removed;
  }
  return removed;
}

std::vector<Json*> pod_templates(Json& object) {
  std::vector<Json*> out;
  if (!object.is_object()) return out;
  const Json kind = object.value("kind", Json());
  if (!kind.is_string()) return out;
  const std::string k = kind.get<std::string>();
  auto at = [](Json& parent, std::initializer_list<const char*> path) -> Json* {
    Json* node = &parent;
    for (const char* key : path) {
      if (!node->is_object()) return nullptr;
      auto it = node->find(key);
      if (it == node->end()) return nullptr;
      node = &*it;
    }
    return node->is_object() ? node : nullptr;
  };
  if (k == "Pod") {
    out.push_back(&object);
  } else if (k == "Deployment" || k == "StatefulSet" || k == "DaemonSet" || k == "ReplicaSet" ||
             k == "ReplicationController" || k == "Job") {
    if (Json* t = at(object, {"spec", "template"})) out.push_back(t);
  } else if (k == "CronJob") {
    if (Json* t = at(object, {"spec", "jobTemplate", "spec", "template"})) out.push_back(t);
  } else if (k == "List" || k.ends_with("List")) {
    auto items = object.find("items");
    if (items != object.end() && items->is_array())
      for (Json& item : *items) {
        std::vector<Json*> inner = pod_templates(item);
        out.insert(out.end(), inner.begin(), inner.end());
      }
  }
  return out;
}

}  // namespace h2mesh::inject
