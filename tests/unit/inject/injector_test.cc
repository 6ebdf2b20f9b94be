// inject_pod / uninject_pod / pod_templates on JSON: the injected pod of the contract
// (docs/injection.md), the annotations, and the pods the sidecar refuses or skips.

#include "inject/injector.h"

#include <gtest/gtest.h>

namespace h2mesh::inject {
namespace {

Json app_pod() {
  return Json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "app", "labels": {"app": "app"}},
    "spec": {"containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 8080}]}]}
  })");
}

Json& annotations(Json& pod) { return pod["metadata"]["annotations"]; }

std::vector<std::string> names(const Json& list) {
  std::vector<std::string> out;
  for (const Json& c : list) out.push_back(c["name"].get<std::string>());
  return out;
}

const Json* find_env(const Json& container, const std::string& name) {
  for (const Json& e : container["env"])
    if (e["name"] == name) return &e;
  return nullptr;
}

Result<InjectOutcome> inject(Json& pod, bool legacy = false) {
  Options options;
  options.legacy_sidecar = legacy;
  return inject_pod(pod, options);
}

std::string error_of(Json pod, bool legacy = false) {
  const Json before = pod;
  auto r = inject(pod, legacy);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(pod, before) << "an error must leave the pod unchanged";
  return r.ok() ? std::string() : r.error().message;
}

TEST(InjectPod, NativeSidecarComesFirstAmongInitContainersThenTheUsers) {
  Json pod = app_pod();
  pod["spec"]["initContainers"] =
      Json::array({Json::object({{"name", "migrate"}, {"image", "m"}})});
  auto r = inject(pod);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->outcome, Outcome::Injected);
  EXPECT_EQ(names(pod["spec"]["initContainers"]),
            (std::vector<std::string>{"h2mesh-init", "h2mesh-proxy", "migrate"}));
  EXPECT_EQ(names(pod["spec"]["containers"]), std::vector<std::string>{"app"});
  const Json& proxy = pod["spec"]["initContainers"][1];
  EXPECT_EQ(proxy["restartPolicy"], "Always");
  EXPECT_EQ(proxy["securityContext"]["runAsUser"], 1337);
  EXPECT_EQ(proxy["image"], std::string(kDefaultImage));
  EXPECT_EQ(proxy["volumeMounts"][0]["name"], "h2mesh-kube-api");
  EXPECT_EQ(names(pod["spec"]["volumes"]),
            (std::vector<std::string>{"h2mesh-kube-api", "h2mesh-xtables-lock", "h2mesh-tls"}));
  EXPECT_EQ(Json::parse(annotations(pod)["h2mesh.io/inject-status"].get<std::string>()),
            Json::parse(R"({"version":"0.1.0","sidecar":"native"})"));
  // A new initContainers reads above containers; the pod's own keys keep their order.
  Json fresh = Json::parse(R"({"spec": {"containers": [{"name": "app"}], "dnsPolicy": "None"}})");
  ASSERT_TRUE(inject(fresh).ok());
  std::vector<std::string> keys;
  for (auto it = fresh.begin(); it != fresh.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"metadata", "spec"}));
  keys.clear();
  for (auto it = fresh["spec"].begin(); it != fresh["spec"].end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys,
            (std::vector<std::string>{"initContainers", "containers", "dnsPolicy", "volumes"}));
}

TEST(InjectPod, InitContainerGetsOnlyTheCapabilitiesIptablesNeeds) {
  Json pod = app_pod();
  ASSERT_TRUE(inject(pod).ok());
  const Json& init = pod["spec"]["initContainers"][0];
  EXPECT_EQ(init["args"], Json::parse(R"(["iptables","install","--proxy-uid","1337",
      "--outbound-port","15001","--admin-port","9901","--inbound-port","15006"])"));
  EXPECT_EQ(init["securityContext"]["capabilities"],
            Json::parse(R"({"drop":["ALL"],"add":["NET_ADMIN","NET_RAW"]})"));
  EXPECT_EQ(init["securityContext"]["runAsUser"], 0);
  // Its root filesystem is read-only; iptables-legacy locks /run/xtables.lock, so /run is an
  // emptyDir of its own.
  EXPECT_EQ(init["securityContext"]["readOnlyRootFilesystem"], true);
  EXPECT_EQ(init["volumeMounts"],
            Json::parse(R"([{"name": "h2mesh-xtables-lock", "mountPath": "/run"}])"));
  EXPECT_EQ(pod["spec"]["volumes"][1], Json::parse(R"({"name": "h2mesh-xtables-lock", "emptyDir": {}})"));
}

TEST(InjectPod, UsersSecurityContextsAndVolumesAreLeftAsTheyWere) {
  Json pod = app_pod();
  pod["spec"]["securityContext"] = Json::parse(R"({"runAsUser": 1000, "fsGroup": 2000})");
  pod["spec"]["containers"][0]["securityContext"] = Json::parse(R"({"runAsUser": 1001})");
  pod["spec"]["volumes"] = Json::parse(R"([{"name": "cache", "emptyDir": {}}])");
  const Json before = pod;
  ASSERT_TRUE(inject(pod).ok());
  EXPECT_EQ(pod["spec"]["securityContext"], before["spec"]["securityContext"]);
  EXPECT_EQ(pod["spec"]["containers"], before["spec"]["containers"]);
  EXPECT_EQ(names(pod["spec"]["volumes"]),
            (std::vector<std::string>{"cache", "h2mesh-kube-api", "h2mesh-xtables-lock",
                                      "h2mesh-tls"}));
}

TEST(InjectPod, LegacySidecarIsTheFirstRegularContainerWithHooks) {
  Json pod = app_pod();
  auto r = inject(pod, true);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(names(pod["spec"]["initContainers"]), std::vector<std::string>{"h2mesh-init"});
  EXPECT_EQ(names(pod["spec"]["containers"]), (std::vector<std::string>{"h2mesh-proxy", "app"}));
  const Json& proxy = pod["spec"]["containers"][0];
  EXPECT_FALSE(proxy.contains("restartPolicy"));
  EXPECT_EQ(
      proxy["lifecycle"]["postStart"]["exec"]["command"],
      Json::parse(R"(["h2mesh","wait-ready","--admin","127.0.0.1:9901","--timeout","120s"])"));
  EXPECT_EQ(proxy["lifecycle"]["preStop"]["exec"]["command"], Json::parse(R"(["sleep","5"])"));
  EXPECT_NE(annotations(pod)["h2mesh.io/inject-status"].get<std::string>().find("legacy"),
            std::string::npos);
}

TEST(InjectPod, LegacySidecarSkipsPodsThatRunToCompletion) {
  for (const char* policy : {"Never", "OnFailure"}) {
    Json pod = app_pod();
    pod["spec"]["restartPolicy"] = policy;
    const Json before = pod;
    auto r = inject(pod, true);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->outcome, Outcome::Skipped);
    EXPECT_NE(r->reason.find("native sidecars"), std::string::npos) << r->reason;
    EXPECT_EQ(pod, before);
    // Native sidecars are stopped after the app containers: the Job completes.
    EXPECT_EQ(inject(pod)->outcome, Outcome::Injected);
  }
  Json owned = app_pod();
  owned["metadata"]["ownerReferences"] = Json::parse(R"([{"kind": "Job", "name": "j"}])");
  EXPECT_EQ(inject(owned, true)->outcome, Outcome::Skipped);
}

TEST(InjectPod, HostNetworkPodIsSkipped) {
  Json pod = app_pod();
  pod["spec"]["hostNetwork"] = true;
  const Json before = pod;
  auto r = inject(pod);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome, Outcome::Skipped);
  EXPECT_NE(r->reason.find("hostNetwork"), std::string::npos);
  EXPECT_EQ(pod, before);
}

TEST(InjectPod, DisabledAnnotationSkipsAndEnabledInjects) {
  Json pod = app_pod();
  annotations(pod)["h2mesh.io/inject"] = "disabled";
  const Json before = pod;
  EXPECT_EQ(inject(pod)->outcome, Outcome::Skipped);
  EXPECT_EQ(pod, before);
  annotations(pod)["h2mesh.io/inject"] = "enabled";
  EXPECT_EQ(inject(pod)->outcome, Outcome::Injected);
  Json bad = app_pod();
  annotations(bad)["h2mesh.io/inject"] = "true";
  EXPECT_NE(error_of(bad).find("h2mesh.io/inject: 'true'"), std::string::npos);
}

TEST(InjectPod, StatusAnnotationOrHandWrittenProxyMeansAlreadyInjected) {
  Json pod = app_pod();
  ASSERT_TRUE(inject(pod).ok());
  Json again = pod;
  EXPECT_EQ(inject(again)->outcome, Outcome::AlreadyInjected);
  EXPECT_EQ(again, pod);
  Json hand = app_pod();
  hand["spec"]["containers"].push_back(Json::object({{"name", "h2mesh-proxy"}, {"image", "x"}}));
  const Json before = hand;
  EXPECT_EQ(inject(hand)->outcome, Outcome::AlreadyInjected);
  EXPECT_EQ(hand, before);
}

TEST(InjectPod, MeshMtlsIsOnByDefaultAndEachPodOrTheOptionsTurnItOff) {
  Json pod = app_pod();
  ASSERT_TRUE(inject(pod).ok());
  const Json& proxy = pod["spec"]["initContainers"][1];
  ASSERT_NE(find_env(proxy, "H2MESH_MESH_CERT"), nullptr);
  EXPECT_EQ((*find_env(proxy, "H2MESH_MESH_CERT"))["value"], "/var/run/h2mesh/tls/tls.crt");
  EXPECT_EQ((*find_env(proxy, "H2MESH_MESH_CA"))["value"], "/var/run/h2mesh/tls/ca.crt");
  EXPECT_EQ((*find_env(proxy, "H2MESH_INBOUND_PORT"))["value"], "15006");
  EXPECT_EQ(proxy["volumeMounts"][1],
            Json::parse(R"({"name":"h2mesh-tls","mountPath":"/var/run/h2mesh/tls",
                            "readOnly":true})"));
  const Json& volume = pod["spec"]["volumes"].back();
  EXPECT_EQ(volume["csi"]["driver"], "csi.cert-manager.io");
  const Json& attributes = volume["csi"]["volumeAttributes"];
  EXPECT_EQ(attributes["csi.cert-manager.io/uri-sans"],
            "spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}");
  EXPECT_EQ(attributes["csi.cert-manager.io/issuer-name"], "h2mesh-mesh-ca");
  EXPECT_EQ(attributes["csi.cert-manager.io/issuer-kind"], "ClusterIssuer");
  EXPECT_EQ(attributes["csi.cert-manager.io/fs-group"], "1337") << "the proxy's group reads it";

  // Off for one pod, or for every pod that does not ask (a cluster without the csi-driver).
  Json off = app_pod();
  annotations(off)["h2mesh.io/mtls"] = "disabled";
  ASSERT_TRUE(inject(off).ok());
  EXPECT_EQ(find_env(off["spec"]["initContainers"][1], "H2MESH_MESH_CERT"), nullptr);
  EXPECT_EQ(names(off["spec"]["volumes"]),
            (std::vector<std::string>{"h2mesh-kube-api", "h2mesh-xtables-lock"}));
  EXPECT_EQ(off["spec"]["initContainers"][0]["args"].back(), "9901") << "no --inbound-port";
  Options no_mtls;
  no_mtls.mtls = false;
  Json asks = app_pod();
  annotations(asks)["h2mesh.io/mtls"] = "enabled";
  ASSERT_TRUE(inject_pod(asks, no_mtls).ok());
  EXPECT_NE(find_env(asks["spec"]["initContainers"][1], "H2MESH_MESH_CERT"), nullptr);
  Json plain = app_pod();
  ASSERT_TRUE(inject_pod(plain, no_mtls).ok());
  EXPECT_EQ(find_env(plain["spec"]["initContainers"][1], "H2MESH_MESH_CERT"), nullptr);

  // Uninject removes the volume too.
  ASSERT_TRUE(uninject_pod(pod).ok());
  EXPECT_EQ(pod, app_pod());
}

TEST(InjectPod, StrictModeComesFromThePodsAnnotationOrTheOptions) {
  // Nothing said: no H2MESH_MTLS_MODE, the sidecar's default (permissive).
  Json pod = app_pod();
  ASSERT_TRUE(inject(pod).ok());
  EXPECT_EQ(find_env(pod["spec"]["initContainers"][1], "H2MESH_MTLS_MODE"), nullptr);
  // The pod's annotation.
  Json strict = app_pod();
  annotations(strict)["h2mesh.io/mtls-mode"] = "strict";
  ASSERT_TRUE(inject(strict).ok());
  const Json* mode = find_env(strict["spec"]["initContainers"][1], "H2MESH_MTLS_MODE");
  ASSERT_NE(mode, nullptr);
  EXPECT_EQ((*mode)["value"], "strict");
  // The options (a namespace's label, through the webhook), which the annotation overrides.
  Options options;
  options.mtls_mode = "strict";
  Json by_options = app_pod();
  ASSERT_TRUE(inject_pod(by_options, options).ok());
  EXPECT_EQ((*find_env(by_options["spec"]["initContainers"][1], "H2MESH_MTLS_MODE"))["value"],
            "strict");
  Json overridden = app_pod();
  annotations(overridden)["h2mesh.io/mtls-mode"] = "permissive";
  ASSERT_TRUE(inject_pod(overridden, options).ok());
  EXPECT_EQ((*find_env(overridden["spec"]["initContainers"][1], "H2MESH_MTLS_MODE"))["value"],
            "permissive");
  // Without mTLS there is no inbound TLS to be strict about.
  Json no_tls = app_pod();
  annotations(no_tls)["h2mesh.io/mtls"] = "disabled";
  annotations(no_tls)["h2mesh.io/mtls-mode"] = "strict";
  ASSERT_TRUE(inject(no_tls).ok());
  EXPECT_EQ(find_env(no_tls["spec"]["initContainers"][1], "H2MESH_MTLS_MODE"), nullptr);
  // A bad value is an error naming the annotation.
  Json bad = app_pod();
  annotations(bad)["h2mesh.io/mtls-mode"] = "strictest";
  EXPECT_NE(error_of(bad).find("h2mesh.io/mtls-mode"), std::string::npos);
}

Options secret_source() {
  Options options;
  options.mtls_source = MtlsSource::Secret;
  return options;
}

const Json& tls_volume_of(const Json& pod) {
  for (const Json& v : pod["spec"]["volumes"])
    if (v["name"] == "h2mesh-tls") return v;
  static const Json kNone;
  ADD_FAILURE() << "no h2mesh-tls volume in " << pod["spec"].dump();
  return kNone;
}

TEST(InjectPod, SecretSourceMountsTheServiceAccountsSecretReadableByTheProxy) {
  Json pod = app_pod();
  pod["spec"]["serviceAccountName"] = "greeter-client";
  ASSERT_TRUE(inject_pod(pod, secret_source()).ok());
  // The same files where the sidecar reads them as with the csi-driver; only the volume differs.
  const Json& proxy = pod["spec"]["initContainers"][1];
  EXPECT_EQ((*find_env(proxy, "H2MESH_MESH_KEY"))["value"], "/var/run/h2mesh/tls/tls.key");
  EXPECT_EQ(proxy["volumeMounts"][1],
            Json::parse(R"({"name":"h2mesh-tls","mountPath":"/var/run/h2mesh/tls",
                            "readOnly":true})"));
  EXPECT_EQ(tls_volume_of(pod), Json::parse(R"({"name":"h2mesh-tls","secret":{
                "secretName":"h2mesh-mesh-tls-greeter-client","defaultMode":292}})"))
      << "0444: without a pod fsGroup the files are root's, and the proxy runs as uid 1337";
  // The pod is otherwise the one the csi source makes.
  Json csi = app_pod();
  csi["spec"]["serviceAccountName"] = "greeter-client";
  ASSERT_TRUE(inject(csi).ok());
  Json a = pod, b = csi;
  a["spec"]["volumes"].erase(a["spec"]["volumes"].size() - 1);
  b["spec"]["volumes"].erase(b["spec"]["volumes"].size() - 1);
  EXPECT_EQ(a, b);
  // Uninject removes the volume as it removes the csi one.
  ASSERT_TRUE(uninject_pod(pod).ok());
  Json original = app_pod();
  original["spec"]["serviceAccountName"] = "greeter-client";
  EXPECT_EQ(pod, original);
}

TEST(InjectPod, SecretNameFollowsTheServiceAccountWithDefaultAndDeprecatedField) {
  Json none = app_pod();
  ASSERT_TRUE(inject_pod(none, secret_source()).ok());
  EXPECT_EQ(tls_volume_of(none)["secret"]["secretName"], "h2mesh-mesh-tls-default")
      << "a pod that names no service account runs as \"default\"";
  Json deprecated = app_pod();
  deprecated["spec"]["serviceAccount"] = "old-style";
  ASSERT_TRUE(inject_pod(deprecated, secret_source()).ok());
  EXPECT_EQ(tls_volume_of(deprecated)["secret"]["secretName"], "h2mesh-mesh-tls-old-style");
  Json both = app_pod();
  both["spec"]["serviceAccount"] = "old-style";
  both["spec"]["serviceAccountName"] = "new-style";
  ASSERT_TRUE(inject_pod(both, secret_source()).ok());
  EXPECT_EQ(tls_volume_of(both)["secret"]["secretName"], "h2mesh-mesh-tls-new-style");
  Options prefixed = secret_source();
  prefixed.mtls_secret_prefix = "mesh.";
  Json dotted = app_pod();
  dotted["spec"]["serviceAccountName"] = "api";
  ASSERT_TRUE(inject_pod(dotted, prefixed).ok());
  EXPECT_EQ(tls_volume_of(dotted)["secret"]["secretName"], "mesh.api");
  // The pod says its mesh mTLS is off: no Secret is needed, none is mounted.
  Json off = app_pod();
  annotations(off)["h2mesh.io/mtls"] = "disabled";
  ASSERT_TRUE(inject_pod(off, secret_source()).ok());
  EXPECT_EQ(names(off["spec"]["volumes"]),
            (std::vector<std::string>{"h2mesh-kube-api", "h2mesh-xtables-lock"}));
}

TEST(InjectPod, MtlsSecretAnnotationWinsOverEitherSourceAndImpliesMtls) {
  for (bool secret : {false, true}) {
    Options options = secret ? secret_source() : Options();
    options.mtls = false;  // --no-mtls: only pods that ask get mesh mTLS; naming a Secret asks
    Json pod = app_pod();
    pod["spec"]["serviceAccountName"] = "greeter";
    annotations(pod)["h2mesh.io/mtls-secret"] = "shared-mesh-cert";
    ASSERT_TRUE(inject_pod(pod, options).ok());
    EXPECT_EQ(tls_volume_of(pod)["secret"]["secretName"], "shared-mesh-cert");
    EXPECT_NE(find_env(pod["spec"]["initContainers"][1], "H2MESH_MESH_CERT"), nullptr);
    EXPECT_EQ(pod["spec"]["initContainers"][0]["args"].back(), "15006") << "--inbound-port";
  }
}

TEST(InjectPod, BadSecretNamesAreErrorsNamingTheField) {
  for (const char* bad : {"Upper", "under_score", "-leading", "trailing-", "a..b", ""}) {
    Json pod = app_pod();
    annotations(pod)["h2mesh.io/mtls-secret"] = bad;
    const std::string error = error_of(pod);
    EXPECT_EQ(error.find("annotation h2mesh.io/mtls-secret: '" + std::string(bad) + "'"), 0u)
        << error;
  }
  Json long_name = app_pod();
  annotations(long_name)["h2mesh.io/mtls-secret"] = std::string(254, 'a');
  EXPECT_NE(error_of(long_name).find("h2mesh.io/mtls-secret"), std::string::npos);
  Json number = app_pod();
  annotations(number)["h2mesh.io/mtls-secret"] = 3;
  EXPECT_NE(error_of(number).find("quote it"), std::string::npos);
  // Naming a Secret and turning mTLS off contradict each other.
  Json contradiction = app_pod();
  annotations(contradiction)["h2mesh.io/mtls-secret"] = "mesh-cert";
  annotations(contradiction)["h2mesh.io/mtls"] = "disabled";
  EXPECT_NE(error_of(contradiction).find("h2mesh.io/mtls is disabled"), std::string::npos);

  // A service account whose Secret name would be too long (the prefix + 253 characters).
  Json long_account = app_pod();
  long_account["spec"]["serviceAccountName"] = std::string(250, 'a');
  const Json before = long_account;
  auto r = inject_pod(long_account, secret_source());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.find("spec.serviceAccountName: '"), 0u) << r.error().message;
  EXPECT_EQ(long_account, before);
  Json not_string = app_pod();
  not_string["spec"]["serviceAccount"] = 7;
  r = inject_pod(not_string, secret_source());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "spec.serviceAccount: not a string");
  // With the csi source the service account's name plays no part.
  Json csi = app_pod();
  csi["spec"]["serviceAccountName"] = std::string(250, 'a');
  EXPECT_TRUE(inject(csi).ok());
}

TEST(InjectOptions, SourceParsesAndThePrefixMustBeginASecretName) {
  MtlsSource source = MtlsSource::Csi;
  EXPECT_TRUE(parse_mtls_source("secret", &source));
  EXPECT_EQ(source, MtlsSource::Secret);
  EXPECT_TRUE(parse_mtls_source("csi", &source));
  EXPECT_EQ(source, MtlsSource::Csi);
  EXPECT_FALSE(parse_mtls_source("Secret", &source));
  EXPECT_FALSE(parse_mtls_source("", &source));
  Options options;
  EXPECT_TRUE(check_options(options).ok()) << "the default prefix";
  for (const char* good : {"mesh-", "mesh.", "m", "tls-for-"}) {
    options.mtls_secret_prefix = good;
    EXPECT_TRUE(check_options(options).ok()) << good;
  }
  for (const char* bad : {"Mesh-", "-mesh", "mesh_", "mesh-.", "mesh/"}) {
    options.mtls_secret_prefix = bad;
    auto r = check_options(options);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message.find("--mtls-secret-prefix: '" + std::string(bad) +
                                     "' cannot begin a Secret name"),
              0u)
        << r.error().message;
  }
  options.mtls_secret_prefix = std::string(253, 'a');
  EXPECT_FALSE(check_options(options).ok()) << "no room left for the service account's name";
}

TEST(InjectPod, AnnotationsReachInitFlagsProxyEnvAndResources) {
  Json pod = app_pod();
  annotations(pod) = Json::parse(R"({
    "h2mesh.io/skip-outbound-ports": "5432,6379",
    "h2mesh.io/skip-outbound-cidrs": "10.0.0.0/8,fd00::/8",
    "h2mesh.io/opaque-ports": "3306",
    "h2mesh.io/log-level": "debug",
    "h2mesh.io/proxy-cpu-request": "100m", "h2mesh.io/proxy-cpu-limit": "2",
    "h2mesh.io/proxy-memory-request": "32Mi", "h2mesh.io/proxy-memory-limit": "0.25Gi"})");
  ASSERT_TRUE(inject(pod).ok());
  const Json& init = pod["spec"]["initContainers"][0];
  const Json& args = init["args"];
  EXPECT_EQ(Json(std::vector<Json>(args.end() - 6, args.end())),
            Json::parse(R"(["--skip-outbound-ports","5432,6379",
                            "--skip-outbound-cidrs","10.0.0.0/8,fd00::/8",
                            "--inbound-port","15006"])"));
  const Json& proxy = pod["spec"]["initContainers"][1];
  ASSERT_NE(find_env(proxy, "H2MESH_OPAQUE_PORTS"), nullptr);
  EXPECT_EQ((*find_env(proxy, "H2MESH_OPAQUE_PORTS"))["value"], "3306");
  ASSERT_NE(find_env(proxy, "H2MESH_LOG_LEVEL"), nullptr);
  EXPECT_EQ((*find_env(proxy, "H2MESH_LOG_LEVEL"))["value"], "debug");
  EXPECT_EQ(proxy["resources"], Json::parse(R"({"requests":{"cpu":"100m","memory":"32Mi"},
                                                "limits":{"cpu":"2","memory":"0.25Gi"}})"));
}

TEST(InjectPod, EachBadAnnotationValueIsAnErrorNamingIt) {
  const std::vector<std::pair<std::string, Json>> bad = {
      {"h2mesh.io/skip-outbound-ports", "5432,"},
      {"h2mesh.io/skip-outbound-ports", "70000"},
      {"h2mesh.io/skip-outbound-cidrs", "10.0.0.0/33"},
      {"h2mesh.io/skip-outbound-cidrs", "not-an-address"},
      {"h2mesh.io/opaque-ports", "mysql"},
      {"h2mesh.io/log-level", "verbose"},
      {"h2mesh.io/proxy-cpu-request", "lots"},
      {"h2mesh.io/proxy-cpu-limit", "-1"},
      {"h2mesh.io/proxy-memory-request", "64MB"},
      {"h2mesh.io/proxy-memory-limit", "1Mi"},  // below the default request
      {"h2mesh.io/proxy-cpu-request", "3"},     // above the default limit
      {"h2mesh.io/proxy-memory-limit", "1e99999999999"},
      {"h2mesh.io/proxy-memory-limit", "1e"},
      {"h2mesh.io/opaque-ports", 3306},  // a number, not a string
  };
  for (const auto& [name, value] : bad) {
    Json pod = app_pod();
    annotations(pod)[name] = value;
    const std::string message = error_of(pod);
    EXPECT_NE(message.find(name), std::string::npos) << name << ": " << message;
  }
}

// The sidecar's env for spans and access lines: "" when the variable is absent.
std::string observe_env(const Json& pod, const char* name) {
  const Json* e = find_env(pod["spec"]["initContainers"][1], name);
  return e ? (*e)["value"].get<std::string>() : std::string();
}

TEST(InjectPod, ObservabilityAnnotationsBecomeTheSidecarsEnv) {
  Json pod = app_pod();
  annotations(pod) = Json::parse(R"({
    "h2mesh.io/otlp-endpoint": "http://otel-collector.observability:4318/v1/traces",
    "h2mesh.io/trace-sample-ratio": "0.05",
    "h2mesh.io/access-log": "stdout",
    "h2mesh.io/access-log-format": "text"})");
  ASSERT_TRUE(inject(pod).ok());
  EXPECT_EQ(observe_env(pod, "H2MESH_OTLP_ENDPOINT"),
            "http://otel-collector.observability:4318/v1/traces");
  EXPECT_EQ(observe_env(pod, "H2MESH_TRACE_SAMPLE_RATIO"), "0.05");
  EXPECT_EQ(observe_env(pod, "H2MESH_ACCESS_LOG"), "stdout");
  EXPECT_EQ(observe_env(pod, "H2MESH_ACCESS_LOG_FORMAT"), "text");

  // Without annotations or defaults, none of them: the sidecar stays as quiet as before.
  Json plain = app_pod();
  ASSERT_TRUE(inject(plain).ok());
  for (const char* name : {"H2MESH_OTLP_ENDPOINT", "H2MESH_TRACE_SAMPLE_RATIO", "H2MESH_ACCESS_LOG",
                           "H2MESH_ACCESS_LOG_FORMAT"})
    EXPECT_EQ(find_env(plain["spec"]["initContainers"][1], name), nullptr) << name;
}

TEST(InjectPod, ObservabilityDefaultsApplyUnlessThePodsAnnotationSaysOtherwise) {
  Options options;
  options.otlp_endpoint = "http://10.0.0.9:4318";
  options.trace_sample_ratio = "0.1";
  options.access_log = "stdout";
  options.access_log_format = "text";
  Json defaulted = app_pod();
  ASSERT_TRUE(inject_pod(defaulted, options).ok());
  EXPECT_EQ(observe_env(defaulted, "H2MESH_OTLP_ENDPOINT"), "http://10.0.0.9:4318");
  EXPECT_EQ(observe_env(defaulted, "H2MESH_TRACE_SAMPLE_RATIO"), "0.1");
  EXPECT_EQ(observe_env(defaulted, "H2MESH_ACCESS_LOG"), "stdout");
  EXPECT_EQ(observe_env(defaulted, "H2MESH_ACCESS_LOG_FORMAT"), "text");

  Json own = app_pod();
  annotations(own) = Json::parse(R"({"h2mesh.io/otlp-endpoint": "http://127.0.0.1:4318",
                                     "h2mesh.io/trace-sample-ratio": "1",
                                     "h2mesh.io/access-log-format": "json"})");
  ASSERT_TRUE(inject_pod(own, options).ok());
  EXPECT_EQ(observe_env(own, "H2MESH_OTLP_ENDPOINT"), "http://127.0.0.1:4318");
  EXPECT_EQ(observe_env(own, "H2MESH_TRACE_SAMPLE_RATIO"), "1");
  EXPECT_EQ(observe_env(own, "H2MESH_ACCESS_LOG_FORMAT"), "json");

  // "off" undoes a default: no env at all, so the sidecar has neither.
  Json off = app_pod();
  annotations(off) = Json::parse(R"({"h2mesh.io/otlp-endpoint": "off",
                                     "h2mesh.io/access-log": "off"})");
  ASSERT_TRUE(inject_pod(off, options).ok());
  for (const char* name : {"H2MESH_OTLP_ENDPOINT", "H2MESH_TRACE_SAMPLE_RATIO", "H2MESH_ACCESS_LOG",
                           "H2MESH_ACCESS_LOG_FORMAT"})
    EXPECT_EQ(find_env(off["spec"]["initContainers"][1], name), nullptr) << name;

  // The default ratio only goes with tracing: a pod without an endpoint gets none.
  Options ratio_only;
  ratio_only.trace_sample_ratio = "0.1";
  Json quiet = app_pod();
  ASSERT_TRUE(inject_pod(quiet, ratio_only).ok());
  EXPECT_EQ(observe_env(quiet, "H2MESH_TRACE_SAMPLE_RATIO"), "");
}

TEST(InjectPod, BadObservabilityAnnotationsAreErrorsNamingThem) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"h2mesh.io/otlp-endpoint", "https://collector:4318"},
      {"h2mesh.io/otlp-endpoint", "collector:4318"},
      {"h2mesh.io/trace-sample-ratio", "1.5"},
      {"h2mesh.io/trace-sample-ratio", "5%"},
      {"h2mesh.io/access-log", "/var/log/h2mesh/access.log"},
      {"h2mesh.io/access-log", "json"},
      {"h2mesh.io/access-log-format", "logfmt"},
  };
  for (const auto& [name, value] : bad) {
    Json pod = app_pod();
    annotations(pod)[name] = value;
    annotations(pod)["h2mesh.io/otlp-endpoint"] =
        name == "h2mesh.io/otlp-endpoint" ? value : "http://127.0.0.1:4318";
    if (name == "h2mesh.io/access-log-format") annotations(pod)["h2mesh.io/access-log"] = "stdout";
    const std::string message = error_of(pod);
    EXPECT_EQ(message.find("annotation " + name + ": "), 0u) << name << ": " << message;
  }
  Json file = app_pod();
  annotations(file)["h2mesh.io/access-log"] = "/var/log/access.log";
  EXPECT_NE(error_of(file).find("read-only root filesystem"), std::string::npos);

  // A ratio for a pod that exports nowhere would make its sidecar refuse to start.
  Json ratio = app_pod();
  annotations(ratio)["h2mesh.io/trace-sample-ratio"] = "0.5";
  EXPECT_NE(error_of(ratio).find("h2mesh.io/trace-sample-ratio: '0.5': tracing is off"),
            std::string::npos);
  // Likewise a format for a pod without an access log.
  Json format = app_pod();
  annotations(format)["h2mesh.io/access-log-format"] = "text";
  EXPECT_NE(error_of(format).find("h2mesh.io/access-log-format: 'text': the access log is off"),
            std::string::npos);
}

TEST(InjectOptions, ObservabilityDefaultsAreCheckedNamingTheFlag) {
  const std::vector<std::pair<std::string, Options>> bad = [] {
    std::vector<std::pair<std::string, Options>> out;
    Options o;
    o.otlp_endpoint = "grpc://collector:4317";
    out.emplace_back("--otlp-endpoint: ", o);
    o = Options();
    o.trace_sample_ratio = "2";
    out.emplace_back("--trace-sample-ratio: ", o);
    o = Options();
    o.access_log = "/tmp/access.log";
    out.emplace_back("--access-log: ", o);
    o = Options();
    o.access_log_format = "yaml";
    out.emplace_back("--access-log-format: ", o);
    return out;
  }();
  for (const auto& [flag, options] : bad) {
    auto r = check_options(options);
    ASSERT_FALSE(r.ok()) << flag;
    EXPECT_EQ(r.error().message.find(flag), 0u) << r.error().message;
  }
  Options good;
  good.otlp_endpoint = "http://[fd00::1]:4318/v1/traces";
  good.trace_sample_ratio = "0";
  good.access_log = "stdout";
  good.access_log_format = "text";
  EXPECT_TRUE(check_options(good).ok());
}

TEST(InjectPod, QuantitiesInEveryKubernetesForm) {
  for (const char* limit : {"1E", "2e9", "2E+9", "1.5Gi", "1000000k", ".5Gi", "+128Mi"}) {
    Json pod = app_pod();
    annotations(pod)["h2mesh.io/proxy-memory-limit"] = limit;
    auto r = inject(pod);
    ASSERT_TRUE(r.ok()) << limit << ": " << r.error().message;
    EXPECT_EQ(pod["spec"]["initContainers"][1]["resources"]["limits"]["memory"], limit);
  }
}

TEST(InjectPod, PortsAndUidTheProxyOwnsAreConflicts) {
  Json admin = app_pod();
  admin["spec"]["containers"][0]["ports"][0]["containerPort"] = 9901;
  EXPECT_NE(error_of(admin).find("spec.containers[0].ports[0].containerPort"), std::string::npos);
  Json outbound = app_pod();
  outbound["spec"]["initContainers"] =
      Json::parse(R"([{"name": "i", "ports": [{"containerPort": 15001}]}])");
  EXPECT_NE(error_of(outbound).find("spec.initContainers[0].ports[0].containerPort: 15001"),
            std::string::npos);
  Json pod_uid = app_pod();
  pod_uid["spec"]["securityContext"] = Json::parse(R"({"runAsUser": 1337})");
  EXPECT_NE(error_of(pod_uid).find("spec.securityContext.runAsUser"), std::string::npos);
  Json container_uid = app_pod();
  container_uid["spec"]["containers"].push_back(
      Json::parse(R"({"name": "b", "securityContext": {"runAsUser": 1337}})"));
  EXPECT_NE(error_of(container_uid).find("spec.containers[1].securityContext.runAsUser"),
            std::string::npos);
  Json volume = app_pod();
  volume["spec"]["volumes"] = Json::parse(R"([{"name": "h2mesh-kube-api", "emptyDir": {}}])");
  EXPECT_NE(error_of(volume).find("spec.volumes[0].name"), std::string::npos);
  Json lock = app_pod();
  lock["spec"]["volumes"] = Json::parse(R"([{"name": "h2mesh-xtables-lock", "emptyDir": {}}])");
  EXPECT_NE(error_of(lock).find("spec.volumes[0].name: h2mesh-xtables-lock"), std::string::npos);
  // Also in legacy mode.
  EXPECT_FALSE(error_of(admin, true).empty());
}

TEST(InjectPod, ImageOptionIsUsedForBothContainers) {
  Json pod = app_pod();
  Options options;
  options.image = "registry.example/h2mesh:dev";
  ASSERT_TRUE(inject_pod(pod, options).ok());
  EXPECT_EQ(pod["spec"]["initContainers"][0]["image"], "registry.example/h2mesh:dev");
  EXPECT_EQ(pod["spec"]["initContainers"][1]["image"], "registry.example/h2mesh:dev");
}

TEST(UninjectPod, RemovesExactlyWhatInjectAdded) {
  for (bool legacy : {false, true}) {
    Json pod = app_pod();
    pod["spec"]["initContainers"] = Json::parse(R"([{"name": "migrate"}])");
    pod["spec"]["volumes"] = Json::parse(R"([{"name": "cache", "emptyDir": {}}])");
    annotations(pod)["team"] = "payments";
    annotations(pod)["h2mesh.io/access-log"] = "stdout";  // the user's: kept
    const Json original = pod;
    Options options;
    options.legacy_sidecar = legacy;
    options.otlp_endpoint = "http://127.0.0.1:4318";
    ASSERT_TRUE(inject_pod(pod, options).ok());
    ASSERT_NE(pod.dump().find("H2MESH_OTLP_ENDPOINT"), std::string::npos);
    auto removed = uninject_pod(pod);
    ASSERT_TRUE(removed.ok());
    EXPECT_TRUE(*removed);
    EXPECT_EQ(pod, original);
    EXPECT_EQ(pod.dump(), original.dump()) << "key order";
    EXPECT_FALSE(*uninject_pod(pod));
  }
  // Keys injection created (annotations, initContainers, volumes) go away again.
  Json bare = app_pod();
  const Json original = bare;
  ASSERT_TRUE(inject(bare).ok());
  ASSERT_TRUE(uninject_pod(bare).ok());
  EXPECT_EQ(bare.dump(), original.dump());
}

TEST(PodTemplates, FindsTheTemplateOfEachWorkloadKind) {
  const Json tmpl = Json::parse(R"({"metadata": {}, "spec": {"containers": []}})");
  for (const char* kind : {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}) {
    Json object = {{"kind", kind}, {"spec", {{"template", tmpl}}}};
    auto found = pod_templates(object);
    ASSERT_EQ(found.size(), 1u) << kind;
    EXPECT_EQ(found[0], &object["spec"]["template"]) << kind;
  }
  Json cron = {{"kind", "CronJob"}, {"spec", {{"jobTemplate", {{"spec", {{"template", tmpl}}}}}}}};
  ASSERT_EQ(pod_templates(cron).size(), 1u);
  EXPECT_EQ(pod_templates(cron)[0], &cron["spec"]["jobTemplate"]["spec"]["template"]);
  Json pod = app_pod();
  EXPECT_EQ(pod_templates(pod), std::vector<Json*>{&pod});
  Json list = {{"kind", "List"},
               {"items", Json::array({app_pod(), Json{{"kind", "Service"}},
                                      Json{{"kind", "List"}, {"items", Json::array({cron})}}})}};
  auto found = pod_templates(list);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], &list["items"][0]);
  EXPECT_EQ(found[1], &list["items"][2]["items"][0]["spec"]["jobTemplate"]["spec"]["template"]);
  Json service = {{"kind", "Service"}, {"spec", {{"template", tmpl}}}};
  EXPECT_TRUE(pod_templates(service).empty());
}

}  // namespace
}  // namespace h2mesh::inject
