// The `mesh:` block and `run --mesh`'s flags.

#include <gtest/gtest.h>

#include "config/mesh_flags.h"
#include "parser_test_util.h"

namespace h2mesh::config {
namespace {

using std::chrono::milliseconds;

TEST(ParserMesh, AMeshBlockAloneIsAConfig) {
  auto r = parse("\nmesh: {}\n");
  ASSERT_TRUE(r.ok()) << dump(r);
  const Mesh& m = r.config->mesh;
  EXPECT_TRUE(m.enabled);
  EXPECT_EQ(m.outbound_port, 15001);
  EXPECT_EQ(m.detect_timeout, milliseconds(100));
  EXPECT_EQ(m.opaque_ports, (std::vector<uint16_t>{25, 587, 3306, 4444, 5432, 6379, 9300, 11211}));
  EXPECT_TRUE(m.namespaces.empty());
  EXPECT_TRUE(r.config->listeners.empty());
  EXPECT_FALSE(m.defaults.cluster.health_check.enabled) << "readiness comes from the API";
}

TEST(ParserMesh, WithoutMeshListenersAndClustersAreStillRequired) {
  auto r = parse("\nworkers: 1\n");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_NE(r.errors[0].message.find("'listeners'"), std::string::npos) << dump(r);
  EXPECT_NE(r.errors[1].message.find("'clusters'"), std::string::npos) << dump(r);
  EXPECT_NE(r.errors[0].hint.find("or a 'mesh' block"), std::string::npos) << dump(r);
}

TEST(ParserMesh, EverySettingIsRead) {
  auto r = parse(R"(
mesh:
  outbound_port: 16001
  detect_timeout: 250ms
  opaque_ports: [5432, 3306]
  namespaces: [grpcdemo, payments]
  kubeconfig: /etc/kube/config
  backoff: { base: 1s, max: 1m }
  cluster_idle_timeout: 2m
  relay: { connect_timeout: 3s, idle_timeout: 1h }
  connection: { max_concurrent_streams: 200, idle_timeout: 5m }
  defaults:
    lb_policy: least_request
    max_timeout: 10s
    retry: { max_attempts: 2 }
  services:
    greeter.grpcdemo:
      lb_policy: random
      outlier_detection: { consecutive_failures: 2 }
)");
  ASSERT_TRUE(r.ok()) << dump(r);
  const Mesh& m = r.config->mesh;
  EXPECT_EQ(m.outbound_port, 16001);
  EXPECT_EQ(m.detect_timeout, milliseconds(250));
  EXPECT_EQ(m.opaque_ports, (std::vector<uint16_t>{5432, 3306}));
  EXPECT_EQ(m.namespaces, (std::vector<std::string>{"grpcdemo", "payments"}));
  EXPECT_EQ(m.kubeconfig, "/etc/kube/config");
  EXPECT_EQ(m.backoff_base, milliseconds(1000));
  EXPECT_EQ(m.backoff_max, milliseconds(60000));
  EXPECT_EQ(m.cluster_idle_timeout, milliseconds(120000));
  EXPECT_EQ(m.relay_connect_timeout, milliseconds(3000));
  EXPECT_EQ(m.relay_idle_timeout, milliseconds(3600000));
  EXPECT_EQ(m.connection.max_concurrent_streams, 200u);
  EXPECT_EQ(m.connection.idle_timeout, milliseconds(300000));
  EXPECT_EQ(m.defaults.cluster.lb_policy, LbPolicy::LeastRequest);
  EXPECT_EQ(m.defaults.max_timeout, milliseconds(10000));
  EXPECT_EQ(m.defaults.retry.max_attempts, 2u);
  // An override is the defaults with what it names.
  const MeshServiceSettings& greeter = m.settings_for("greeter", "grpcdemo");
  EXPECT_EQ(greeter.cluster.lb_policy, LbPolicy::Random);
  EXPECT_EQ(greeter.cluster.outlier_detection.consecutive_failures, 2u);
  EXPECT_EQ(greeter.max_timeout, milliseconds(10000)) << "from the defaults";
  EXPECT_EQ(greeter.retry.max_attempts, 2u) << "from the defaults";
  EXPECT_EQ(&m.settings_for("greeter", "other"), &m.defaults);
}

TEST(ParserMesh, ServiceKeysAreNameDotNamespace) {
  EXPECT_TRUE(has_one_error(parse(R"(
mesh:
  services:
    greeter: { lb_policy: random }
)"),
                            3, "'greeter' is not a Service as name.namespace", "greeter.grpcdemo"));
  EXPECT_TRUE(has_one_error(parse(R"(
mesh:
  services:
    Greeter.demo: { lb_policy: random }
)"),
                            3, "not a Service as name.namespace"));
}

TEST(ParserMesh, ServiceSettingsAreCheckedLikeClusters) {
  EXPECT_TRUE(has_one_error(parse(R"(
mesh:
  defaults:
    lb_policy: fastest
)"),
                            3, "lb_policy"));
  EXPECT_TRUE(has_one_error(parse(R"(
mesh:
  defaults:
    endpoints: ["10.0.0.1:80"]
)"),
                            3, "endpoints"));
}

TEST(ParserMesh, OutboundPortMustNotBeTheAdminPort) {
  EXPECT_TRUE(has_one_error(parse(R"(
admin: { address: "127.0.0.1:15001" }
mesh: {}
)"),
                            2, "outbound port 15001 is the admin port"));
  EXPECT_TRUE(has_one_error(parse(R"(
admin: { address: "127.0.0.1:9901" }
mesh: { outbound_port: 9901 }
)"),
                            2, "is the admin port"));
}

TEST(ParserMesh, OpaquePortsAndNamespacesAreValidated) {
  EXPECT_TRUE(has_one_error(parse("\nmesh: { opaque_ports: [0] }\n"), 1, "opaque_ports"));
  EXPECT_TRUE(has_one_error(parse("\nmesh: { namespaces: [Bad_NS] }\n"), 1, "namespace 'Bad_NS'"));
}

TEST(MeshFlags, FlagsOverrideTheFileAndTurnMeshOn) {
  std::map<std::string, std::string> flags = {{"--kubeconfig", "/k"},
                                              {"--namespaces", "a,b-2"},
                                              {"--outbound-port", "15101"},
                                              {"--admin", "0.0.0.0:15020"}};
  MeshFlags parsed;
  std::string error;
  ASSERT_TRUE(parse_mesh_flags(flags, &parsed, &error)) << error;
  Config config;
  ASSERT_TRUE(apply_mesh_flags(parsed, &config, &error)) << error;
  EXPECT_TRUE(config.mesh.enabled);
  EXPECT_EQ(config.mesh.kubeconfig, "/k");
  EXPECT_EQ(config.mesh.namespaces, (std::vector<std::string>{"a", "b-2"}));
  EXPECT_EQ(config.mesh.outbound_port, 15101);
  EXPECT_EQ(config.admin.address.to_string(), "0.0.0.0:15020");
}

TEST(MeshFlags, OpaquePortsReplaceTheConfigsList) {
  MeshFlags parsed;
  std::string error;
  ASSERT_TRUE(parse_mesh_flags({{"--opaque-ports", "3306,5432"}}, &parsed, &error)) << error;
  Config config;
  config.mesh.opaque_ports = {25, 6379};
  ASSERT_TRUE(apply_mesh_flags(parsed, &config, &error)) << error;
  EXPECT_EQ(config.mesh.opaque_ports, (std::vector<uint16_t>{3306, 5432}));
  for (const char* bad : {"0", "3306,", "mysql", "65536"}) {
    EXPECT_FALSE(parse_mesh_flags({{"--opaque-ports", bad}}, &parsed, &error)) << bad;
    EXPECT_NE(error.find("--opaque-ports"), std::string::npos) << error;
  }
}

TEST(MeshFlags, BadValuesNameTheFlag) {
  std::string error;
  MeshFlags parsed;
  EXPECT_FALSE(parse_mesh_flags({{"--outbound-port", "70000"}}, &parsed, &error));
  EXPECT_NE(error.find("--outbound-port"), std::string::npos) << error;
  EXPECT_FALSE(parse_mesh_flags({{"--namespaces", "a,,b"}}, &parsed, &error));
  EXPECT_NE(error.find("--namespaces"), std::string::npos) << error;
  EXPECT_FALSE(parse_mesh_flags({{"--admin", "nowhere"}}, &parsed, &error));
  EXPECT_NE(error.find("--admin"), std::string::npos) << error;
  Config config;
  MeshFlags same;
  same.outbound_port = 9901;  // the default admin port
  EXPECT_FALSE(apply_mesh_flags(same, &config, &error));
  EXPECT_NE(error.find("admin port"), std::string::npos) << error;
}

// How an injected sidecar gets spans and access lines: no config file, only flags (or env).
TEST(MeshFlags, ObservabilityFlagsTurnTracingAndTheAccessLogOnWithoutAFile) {
  MeshFlags parsed;
  std::string error;
  ASSERT_TRUE(parse_mesh_flags({{"--otlp-endpoint", "http://otel-collector.observability:4318"},
                                {"--trace-sample-ratio", "0.25"},
                                {"--access-log", "stdout"}},
                               &parsed, &error))
      << error;
  Config config;
  ASSERT_TRUE(apply_mesh_flags(parsed, &config, &error)) << error;
  EXPECT_TRUE(config.tracing.enabled);
  EXPECT_EQ(config.tracing.otlp_endpoint, "http://otel-collector.observability:4318");
  EXPECT_EQ(config.tracing.otlp_host, "otel-collector.observability");
  EXPECT_EQ(config.tracing.otlp_port, 4318);
  EXPECT_EQ(config.tracing.otlp_path, "/v1/traces");
  EXPECT_EQ(config.tracing.sample_ratio, 0.25);
  ASSERT_TRUE(config.access_log.has_value());
  EXPECT_EQ(config.access_log->path, "stdout");
  EXPECT_EQ(config.access_log->format, AccessLog::Format::Json);
  EXPECT_TRUE(config.access_log->fields.empty());  // every field
  EXPECT_EQ(config.access_log->sample_ratio, 1.0);

  // Without the flags, nothing is on: a sidecar stays as quiet as before.
  Config plain;
  ASSERT_TRUE(apply_mesh_flags(MeshFlags{}, &plain, &error)) << error;
  EXPECT_FALSE(plain.tracing.enabled);
  EXPECT_FALSE(plain.access_log.has_value());
}

TEST(MeshFlags, ObservabilityFlagsOverrideWhatTheyNameInTheFilesBlocks) {
  auto r = parse(R"(
mesh: {}
tracing:
  otlp_endpoint: "http://127.0.0.1:4318/v1/traces"
  service_name: checkout
  sample_ratio: 0.5
access_log:
  path: /var/log/h2mesh/access.log
  format: json
  fields: [time, grpc_status]
)");
  ASSERT_TRUE(r.ok()) << dump(r);
  MeshFlags parsed;
  std::string error;
  ASSERT_TRUE(parse_mesh_flags({{"--otlp-endpoint", "http://[::1]:14318/otlp"},
                                {"--access-log", "stdout"},
                                {"--access-log-format", "text"}},
                               &parsed, &error))
      << error;
  Config config = *r.config;
  ASSERT_TRUE(apply_mesh_flags(parsed, &config, &error)) << error;
  EXPECT_EQ(config.tracing.otlp_host, "::1");
  EXPECT_EQ(config.tracing.otlp_port, 14318);
  EXPECT_EQ(config.tracing.otlp_path, "/otlp");
  EXPECT_EQ(config.tracing.service_name, "checkout");  // not named by a flag: the file's
  EXPECT_EQ(config.tracing.sample_ratio, 0.5);
  ASSERT_TRUE(config.access_log.has_value());
  EXPECT_EQ(config.access_log->path, "stdout");
  EXPECT_EQ(config.access_log->format, AccessLog::Format::Text);
  EXPECT_EQ(config.access_log->fields, (std::vector<std::string>{"time", "grpc_status"}));

  // "off" turns the file's access log off (what the injector's h2mesh.io/access-log: off
  // becomes).
  MeshFlags off;
  ASSERT_TRUE(parse_mesh_flags({{"--access-log", "off"}}, &off, &error)) << error;
  Config without = *r.config;
  ASSERT_TRUE(apply_mesh_flags(off, &without, &error)) << error;
  EXPECT_FALSE(without.access_log.has_value());
}

TEST(MeshFlags, BadObservabilityValuesNameTheFlag) {
  MeshFlags parsed;
  std::string error;
  const std::pair<const char*, const char*> bad[] = {
      {"--otlp-endpoint", "https://collector:4318"},  // the config reader refuses it too
      {"--otlp-endpoint", "collector:4318"},
      {"--otlp-endpoint", "http://collector:99999"},
      {"--trace-sample-ratio", "1.5"},
      {"--trace-sample-ratio", "10%"},
      {"--trace-sample-ratio", "-0.1"},
      {"--access-log", "~/access.log"},
      {"--access-log-format", "yaml"},
  };
  for (const auto& [flag, value] : bad) {
    EXPECT_FALSE(parse_mesh_flags({{flag, value}}, &parsed, &error)) << flag << " " << value;
    EXPECT_TRUE(error.starts_with(std::string(flag) + ":")) << error;
  }
  EXPECT_FALSE(parse_mesh_flags({{"--otlp-endpoint", "https://collector:4318"}}, &parsed, &error));
  EXPECT_NE(error.find("https is not supported"), std::string::npos) << error;

  // A ratio or a format for something that is off would be silently ignored: an error.
  Config config;
  MeshFlags ratio_only;
  ASSERT_TRUE(parse_mesh_flags({{"--trace-sample-ratio", "0.1"}}, &ratio_only, &error)) << error;
  EXPECT_FALSE(apply_mesh_flags(ratio_only, &config, &error));
  EXPECT_NE(error.find("--trace-sample-ratio: tracing is off"), std::string::npos) << error;
  MeshFlags format_only;
  ASSERT_TRUE(parse_mesh_flags({{"--access-log-format", "text"}}, &format_only, &error)) << error;
  EXPECT_FALSE(apply_mesh_flags(format_only, &config, &error));
  EXPECT_NE(error.find("--access-log-format: the access log is off"), std::string::npos) << error;
}

TEST(ParserMesh, MeshTlsIsReadAndChecked) {
  auto r = parse(R"(
mesh:
  inbound_port: 16006
  tls:
    cert: /var/run/h2mesh/tls/tls.crt
    key: /var/run/h2mesh/tls/tls.key
    ca: /var/run/h2mesh/tls/ca.crt
    mode: strict
    trust_domain: example.org
    allowed_identities: [spiffe://example.org/ns/grpcdemo/sa/greeter-client]
)");
  ASSERT_TRUE(r.ok()) << dump(r);
  const Mesh& m = r.config->mesh;
  EXPECT_EQ(m.inbound_port, 16006);
  ASSERT_TRUE(m.tls.has_value());
  EXPECT_EQ(m.tls->cert, "/var/run/h2mesh/tls/tls.crt");
  EXPECT_EQ(m.tls->key, "/var/run/h2mesh/tls/tls.key");
  EXPECT_EQ(m.tls->ca, "/var/run/h2mesh/tls/ca.crt");
  EXPECT_EQ(m.tls->mode, MeshTls::Mode::Strict);
  EXPECT_EQ(m.tls->trust_domain, "example.org");
  EXPECT_EQ(m.tls->allowed_identities,
            (std::vector<std::string>{"spiffe://example.org/ns/grpcdemo/sa/greeter-client"}));

  auto plain = parse("\nmesh: {}\n");
  ASSERT_TRUE(plain.ok()) << dump(plain);
  EXPECT_EQ(plain.config->mesh.inbound_port, 15006);
  EXPECT_FALSE(plain.config->mesh.tls.has_value()) << "no mesh mTLS unless configured";

  auto defaults = parse("\nmesh: { tls: { cert: /c, key: /k, ca: /ca } }\n");
  ASSERT_TRUE(defaults.ok()) << dump(defaults);
  EXPECT_EQ(defaults.config->mesh.tls->mode, MeshTls::Mode::Permissive);
  EXPECT_EQ(defaults.config->mesh.tls->trust_domain, "cluster.local");

  EXPECT_TRUE(has_one_error(parse("\nmesh: { tls: { cert: /c, key: /k } }\n"), 1, "'ca'"));
  EXPECT_TRUE(has_one_error(parse("\nmesh: { tls: { cert: /c, key: /k, ca: /ca, mode: lax } }\n"),
                            1, "mode"));
  EXPECT_TRUE(has_one_error(parse("\nmesh: { tls: { cert: '', key: /k, ca: /ca } }\n"), 1,
                            "must not be empty"));
}

TEST(MeshFlags, MeshTlsFromFlagsOrEnvironmentNeedsAllThreeFiles) {
  MeshFlags parsed;
  std::string error;
  ASSERT_TRUE(parse_mesh_flags({{"--mesh-cert", "/t/tls.crt"},
                                {"--mesh-key", "/t/tls.key"},
                                {"--mesh-ca", "/t/ca.crt"},
                                {"--mtls-mode", "strict"},
                                {"--inbound-port", "15106"}},
                               &parsed, &error))
      << error;
  Config config;
  ASSERT_TRUE(apply_mesh_flags(parsed, &config, &error)) << error;
  ASSERT_TRUE(config.mesh.tls.has_value());
  EXPECT_EQ(config.mesh.tls->cert, "/t/tls.crt");
  EXPECT_EQ(config.mesh.tls->ca, "/t/ca.crt");
  EXPECT_EQ(config.mesh.tls->mode, MeshTls::Mode::Strict);
  EXPECT_EQ(config.mesh.inbound_port, 15106);

  MeshFlags half;
  ASSERT_TRUE(parse_mesh_flags({{"--mesh-cert", "/t/tls.crt"}}, &half, &error)) << error;
  Config other;
  EXPECT_FALSE(apply_mesh_flags(half, &other, &error));
  EXPECT_NE(error.find("H2MESH_MESH_CA"), std::string::npos) << error;

  EXPECT_FALSE(parse_mesh_flags({{"--mtls-mode", "STRICT"}}, &parsed, &error));
  EXPECT_NE(error.find("--mtls-mode"), std::string::npos) << error;
  MeshFlags clash;
  clash.inbound_port = 15001;
  Config third;
  EXPECT_FALSE(apply_mesh_flags(clash, &third, &error));
  EXPECT_NE(error.find("inbound port 15001 is also the outbound port"), std::string::npos) << error;
}

}  // namespace
}  // namespace h2mesh::config
