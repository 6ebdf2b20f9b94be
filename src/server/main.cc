// h2mesh: per-call gRPC (HTTP/2) load balancer.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "config/mesh_flags.h"
#include "config/parser.h"
#include "config/yaml_reader.h"
#include "inject/manifest_io.h"
#include "mesh/iptables_command.h"
#include "net/tls_files.h"
#include "observe/access_log.h"
#include "server/demo.h"
#include "server/server.h"
#include "server/top.h"
#include "server/wait_ready.h"
#include "webhook/webhook_command.h"

namespace {

// Every command, the flags it takes (each takes a value) and its switches (flags without a
// value). Anything else on the command line is an error: a mistyped flag silently ignored would
// run with a setting the user did not mean.
struct Command {
  const char* name;
  const char* arguments;  // as shown in the usage
  const char* summary;
  std::vector<std::string_view> flags;     // take a value
  std::vector<std::string_view> switches;  // take none ("1" when given)
};

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"run",
       "--config FILE | --mesh [--config FILE] [--kubeconfig PATH] [--namespaces NS,NS..]\n"
       "             [--outbound-port PORT] [--admin ADDRESS] [--opaque-ports P,P..]\n"
       "             [--inbound-port PORT] [--mesh-cert F --mesh-key F --mesh-ca F]\n"
       "             [--mtls-mode permissive|strict] [--otlp-endpoint URL]\n"
       "             [--trace-sample-ratio R] [--access-log stdout|PATH|off]\n"
       "             [--access-log-format json|text] [--log-level debug|info|warn|error]",
       "serve with the config in FILE (--log-level overrides its log_level); with --mesh, as a\n"
       "      sidecar: redirected outbound TCP, every Kubernetes Service balanced per call, no\n"
       "      config needed (flags, or H2MESH_KUBECONFIG, H2MESH_NAMESPACES, H2MESH_OUTBOUND_PORT,\n"
       "      H2MESH_ADMIN, H2MESH_OPAQUE_PORTS, H2MESH_INBOUND_PORT, H2MESH_MESH_CERT,\n"
       "      H2MESH_MESH_KEY, H2MESH_MESH_CA, H2MESH_MTLS_MODE, H2MESH_LOG_LEVEL, override the\n"
       "      config's mesh block); --otlp-endpoint (H2MESH_OTLP_ENDPOINT) turns tracing on,\n"
       "      --access-log (H2MESH_ACCESS_LOG) the access log, over the config's tracing and\n"
       "      access_log blocks (H2MESH_TRACE_SAMPLE_RATIO, H2MESH_ACCESS_LOG_FORMAT)",
       {"--config", "--log-level", "--kubeconfig", "--namespaces", "--outbound-port", "--admin",
        "--opaque-ports", "--inbound-port", "--mesh-cert", "--mesh-key", "--mesh-ca",
        "--mtls-mode", "--otlp-endpoint", "--trace-sample-ratio", "--access-log",
        "--access-log-format"},
       {"--mesh"}},
      {"check", "--config FILE", "validate a config and list every error", {"--config"}, {}},
      {"demo", "[--mesh] [--calls N]",
       "per-connection vs per-call balancing, side by side (N: a multiple of 4, default 24);\n"
       "      --mesh (root): in network namespaces, a ClusterIP Service without and with the sidecar",
       {"--calls"},
       {"--mesh"}},
      {"iptables", "install|uninstall|show [--dry-run] [FLAGS]",
       "mesh mode's interception rules, as root (FLAGS: h2mesh iptables --help)",
       {}, {}},  // reads its own flags (an action word, --dry-run without a value)
      {"inject",
       "[-f FILE|-] [--image IMAGE] [--legacy-sidecar] [--no-mtls] [--mtls-mode strict|permissive]\n"
       "             [--mtls-source csi|secret] [--mtls-secret-prefix PREFIX] [--otlp-endpoint URL]\n"
       "             [--trace-sample-ratio R] [--access-log stdout] [--access-log-format json|text]\n"
       "             [--output yaml|json]",
       "add the h2mesh sidecar to every workload of a manifest (stdin without -f) and print it;\n"
       "      other documents come out unchanged (docs/injection.md); --no-mtls: no mesh mTLS\n"
       "      (no certificate volume) unless a pod asks (h2mesh.io/mtls: enabled);\n"
       "      --mtls-mode: inbound mode of pods without an h2mesh.io/mtls-mode annotation;\n"
       "      --mtls-source: the pods' certificates from cert-manager's csi-driver (csi, default)\n"
       "      or from the Secret PREFIX<serviceAccountName> (secret; default PREFIX\n"
       "      h2mesh-mesh-tls-, as deploy/mesh-certs/make-mesh-certs.sh writes them);\n"
       "      --otlp-endpoint, --trace-sample-ratio, --access-log, --access-log-format: the\n"
       "      sidecars' tracing and access log for pods without the h2mesh.io/otlp-endpoint,\n"
       "      trace-sample-ratio, access-log, access-log-format annotations",
       {"-f", "--image", "--output", "--mtls-mode", "--mtls-source", "--mtls-secret-prefix",
        "--otlp-endpoint", "--trace-sample-ratio", "--access-log", "--access-log-format"},
       {"--legacy-sidecar", "--no-mtls"}},
      {"uninject", "[-f FILE|-] [--output yaml|json]",
       "remove what inject added from every workload of a manifest and print it",
       {"-f", "--output"},
       {}},
      {"top", "[--admin HOST:PORT] [--interval DURATION] [--window SECONDS] [--once]",
       "the live view of the admin page in a terminal: each cluster's endpoints with their share\n"
       "      of calls, rate, p99, errors and health over the last --window seconds (default\n"
       "      127.0.0.1:9901, every 1s, 10s window); --once, or stdout not a terminal: plain lines",
       {"--admin", "--interval", "--window"},
       {"--once"}},
      {"wait-ready", "[--admin HOST:PORT] [--timeout DURATION]",
       "wait until the proxy's admin server answers GET /ready (default 127.0.0.1:9901, 60s);\n"
       "      exit code 1 when it did not within the timeout",
       {"--admin", "--timeout"},
       {}},
      {"webhook",
       "--cert FILE --key FILE [--listen ADDRESS] [--admin ADDRESS] [--kubeconfig PATH]\n"
       "             [--image IMAGE] [--legacy-sidecar] [--no-mtls] [--mtls-source csi|secret]\n"
       "             [--mtls-secret-prefix PREFIX] [--otlp-endpoint URL] [--trace-sample-ratio R]\n"
       "             [--access-log stdout] [--access-log-format json|text]\n"
       "             [--log-level debug|info|warn|error]",
       "the mutating admission webhook: injects the sidecar into pods of namespaces labelled\n"
       "      h2mesh-injection=enabled (HTTPS on --listen, default :9443; /ready and /metrics on\n"
       "      --admin, default 127.0.0.1:9902; docs/webhook.md); --no-mtls, --mtls-source,\n"
       "      --mtls-secret-prefix, --otlp-endpoint, --trace-sample-ratio, --access-log,\n"
       "      --access-log-format as for inject",
       {"--cert", "--key", "--listen", "--admin", "--kubeconfig", "--image", "--log-level",
        "--mtls-source", "--mtls-secret-prefix", "--otlp-endpoint", "--trace-sample-ratio",
        "--access-log", "--access-log-format"},
       {"--legacy-sidecar", "--no-mtls"}},
      {"version", "", "print the version", {}, {}},
      {"help", "[COMMAND]", "print this help, or a command's", {}, {}},
  };
  return kCommands;
}

const Command* find_command(std::string_view name) {
  for (const Command& c : commands())
    if (name == c.name) return &c;
  return nullptr;
}

void usage(FILE* out) {
  fprintf(out, "usage: h2mesh COMMAND [FLAGS]\n\ncommands:\n");
  for (const Command& c : commands()) {
    std::string line = std::string(c.name) + (*c.arguments ? " " : "") + c.arguments;
    fprintf(out, "  h2mesh %s\n      %s\n", line.c_str(), c.summary);
  }
  fprintf(out,
          "\nh2mesh --help (-h) prints this help, h2mesh COMMAND --help a command's, and\n"
          "h2mesh --version the version. Unknown flags are errors (exit code 2).\n");
}

void command_usage(const Command& c, FILE* out) {
  fprintf(out, "usage: h2mesh %s%s%s\n  %s\n", c.name, *c.arguments ? " " : "", c.arguments,
          c.summary);
}

// A command-line mistake: what was wrong, with a hint when a known word is close. Exit code 2.
int usage_error(const std::string& where, const std::string& message,
                std::string_view typed = {}, const std::vector<std::string_view>& known = {}) {
  std::string hint;
  if (!typed.empty()) {
    std::string meant = h2mesh::config::likely_meant(typed, known);
    if (!meant.empty()) hint = " (did you mean " + meant + "?)";
  }
  fprintf(stderr, "%s: %s%s\nRun '%s --help' for usage.\n", where.c_str(), message.c_str(),
          hint.c_str(), where.c_str());
  return 2;
}

// Reads the flags of `c` from argv[2..]. Returns -1 when the command should run, else the exit
// code (0 after --help, 2 after a mistake).
int read_flags(const Command& c, int argc, char** argv, std::map<std::string, std::string>* out) {
  const std::string where = std::string("h2mesh ") + c.name;
  std::vector<std::string_view> known = c.flags;
  known.insert(known.end(), c.switches.begin(), c.switches.end());
  known.push_back("--help");
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      command_usage(c, stdout);
      return 0;
    }
    if (!arg.starts_with("-"))
      return usage_error(where, "unexpected argument '" + std::string(arg) + "'");
    std::string_view name = arg.substr(0, arg.find('='));
    bool is_switch = false;
    for (std::string_view f : c.switches) is_switch = is_switch || f == name;
    if (is_switch) {
      if (name.size() < arg.size())
        return usage_error(where, std::string(name) + " takes no value");
      if (!out->emplace(std::string(name), "1").second)
        return usage_error(where, std::string(name) + " is given twice");
      continue;
    }
    bool known_flag = false;
    for (std::string_view f : c.flags) known_flag = known_flag || f == name;
    if (!known_flag)
      return usage_error(where, "unknown flag '" + std::string(name) + "'", name, known);
    std::string value;
    if (name.size() < arg.size()) {
      value = std::string(arg.substr(name.size() + 1));  // --flag=value
    } else if (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) {
      value = argv[++i];
    } else {
      return usage_error(where, std::string(name) + " needs a value");
    }
    if (value.empty()) return usage_error(where, std::string(name) + " needs a value");
    if (!out->emplace(std::string(name), value).second)
      return usage_error(where, std::string(name) + " is given twice");
  }
  return -1;
}

// The whole of FILE, or of stdin for "-".
bool read_input(const std::string& path, std::string* out, std::string* error) {
  FILE* in = path == "-" ? stdin : fopen(path.c_str(), "rb");
  if (!in) {
    *error = path + ": " + strerror(errno);
    return false;
  }
  char buffer[65536];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, in)) > 0) out->append(buffer, n);
  const bool failed = ferror(in) != 0;
  if (in != stdin) fclose(in);
  if (failed) *error = (path == "-" ? std::string("stdin") : path) + ": read error";
  return !failed;
}

// --mtls-source, --mtls-secret-prefix and the observability defaults (--otlp-endpoint,
// --trace-sample-ratio, --access-log) of inject and webhook into `options`; a usage error's exit
// code (2) when they are wrong, else -1.
int read_inject_options(const std::string& where, std::map<std::string, std::string>& flags,
                        h2mesh::inject::Options* options) {
  if (flags.count("--mtls-source") &&
      !h2mesh::inject::parse_mtls_source(flags["--mtls-source"], &options->mtls_source))
    return usage_error(where,
                       "--mtls-source: '" + flags["--mtls-source"] + "' is not csi or secret",
                       flags["--mtls-source"], {"csi", "secret"});
  if (flags.count("--mtls-secret-prefix")) {
    if (options->mtls_source != h2mesh::inject::MtlsSource::Secret)
      return usage_error(where, "--mtls-secret-prefix needs --mtls-source secret");
    options->mtls_secret_prefix = flags["--mtls-secret-prefix"];
  }
  if (flags.count("--otlp-endpoint")) options->otlp_endpoint = flags["--otlp-endpoint"];
  if (flags.count("--trace-sample-ratio")) options->trace_sample_ratio = flags["--trace-sample-ratio"];
  if (flags.count("--access-log")) options->access_log = flags["--access-log"];
  if (flags.count("--access-log-format")) options->access_log_format = flags["--access-log-format"];
  if (auto checked = h2mesh::inject::check_options(*options); !checked.ok())
    return usage_error(where, checked.error().message);
  return -1;
}

// inject and uninject: the manifest on stdout, warnings on stderr; nothing on stdout after an
// error, so a pipe into kubectl apply applies nothing half-done.
int rewrite_manifest(const std::string& name, std::map<std::string, std::string>& flags) {
  using namespace h2mesh::inject;
  const std::string where = "h2mesh " + name;
  OutputFormat format = OutputFormat::Yaml;
  if (flags.count("--output")) {
    if (flags["--output"] == "json") format = OutputFormat::Json;
    else if (flags["--output"] != "yaml")
      return usage_error(where, "--output must be yaml or json", flags["--output"],
                         {"yaml", "json"});
  }
  const std::string path = flags.count("-f") ? flags["-f"] : "-";
  std::string text, error;
  if (!read_input(path, &text, &error)) {
    fprintf(stderr, "%s: %s\n", where.c_str(), error.c_str());
    return 1;
  }
  std::vector<DocumentReport> reports;
  h2mesh::Result<std::string> out = std::string();
  if (name == "inject") {
    Options options;
    if (flags.count("--image")) options.image = flags["--image"];
    options.legacy_sidecar = flags.count("--legacy-sidecar") != 0;
    options.mtls = flags.count("--no-mtls") == 0;
    if (flags.count("--mtls-mode")) {
      const std::string& mode = flags["--mtls-mode"];
      if (mode != "strict" && mode != "permissive")
        return usage_error("h2mesh inject", "--mtls-mode: '" + mode + "' is not strict or permissive",
                           mode, {"strict", "permissive"});
      options.mtls_mode = mode;
    }
    if (int code = read_inject_options(where, flags, &options); code >= 0) return code;
    out = inject_manifest(text, options, format, &reports);
  } else {
    out = uninject_manifest(text, format, &reports);
  }
  const std::string source = path == "-" ? "stdin" : path;
  if (!out.ok()) {
    fprintf(stderr, "%s: %s: %s\n", where.c_str(), source.c_str(), out.error().message.c_str());
    return 1;
  }
  for (const DocumentReport& r : reports) {
    if (name != "inject" || r.outcome == Outcome::Injected) continue;
    fprintf(stderr, "%s: %s: document %d (%s): %s: %s\n", where.c_str(), source.c_str(),
            r.index + 1, r.what.c_str(),
            r.outcome == Outcome::Skipped ? "skipped" : "already injected", r.reason.c_str());
  }
  fwrite(out->data(), 1, out->size(), stdout);
  return fflush(stdout) == 0 ? 0 : 1;
}

int wait_ready_command(std::map<std::string, std::string>& flags) {
  h2mesh::config::SocketAddress admin{"127.0.0.1", 9901};
  std::string error, hint;
  if (flags.count("--admin") &&
      !h2mesh::config::parse_socket_address(flags["--admin"], &admin, &error))
    return usage_error("h2mesh wait-ready", "--admin: " + error);
  h2mesh::config::Millis timeout(60'000);
  if (flags.count("--timeout") &&
      !h2mesh::config::parse_duration_text(flags["--timeout"], &timeout, &error, &hint))
    return usage_error("h2mesh wait-ready", "--timeout: " + error);
  if (h2mesh::server::wait_ready(admin, timeout)) return 0;
  fprintf(stderr, "h2mesh wait-ready: %s/ready did not answer 200 within %s\n",
          admin.to_string().c_str(), h2mesh::config::format_millis(timeout).c_str());
  return 1;
}

int top_command(std::map<std::string, std::string>& flags) {
  h2mesh::server::TopSettings settings;
  std::string error, hint;
  if (flags.count("--admin") &&
      !h2mesh::config::parse_socket_address(flags["--admin"], &settings.admin, &error))
    return usage_error("h2mesh top", "--admin: " + error);
  h2mesh::config::Millis interval(1000);
  if (flags.count("--interval") &&
      !h2mesh::config::parse_duration_text(flags["--interval"], &interval, &error, &hint))
    return usage_error("h2mesh top", "--interval: " + error);
  if (interval.count() < 100) return usage_error("h2mesh top", "--interval must be at least 100ms");
  settings.interval = std::chrono::milliseconds(interval.count());
  if (flags.count("--window")) {
    settings.window = atoi(flags["--window"].c_str());
    if (settings.window < 1 || settings.window > 60)
      return usage_error("h2mesh top", "--window must be 1 to 60 (seconds)");
  }
  settings.once = flags.count("--once") != 0;
  return h2mesh::server::run_top(settings);
}

// "HOST:PORT", or ":PORT" for every IPv4 address.
bool parse_listen(const std::string& text, h2mesh::config::SocketAddress* out, std::string* why) {
  return h2mesh::config::parse_socket_address(text.starts_with(":") ? "0.0.0.0" + text : text, out,
                                              why);
}

int run_webhook_command(std::map<std::string, std::string>& flags) {
  const std::string where = "h2mesh webhook";
  h2mesh::webhook::WebhookSettings settings;
  if (!flags.count("--cert") || !flags.count("--key"))
    return usage_error(where, "--cert FILE and --key FILE are required (the serving certificate)");
  settings.cert_file = flags["--cert"];
  settings.key_file = flags["--key"];
  for (auto [flag, address] : {std::pair{"--listen", &settings.listen},
                               std::pair{"--admin", &settings.admin}}) {
    std::string why;
    if (flags.count(flag) && !parse_listen(flags[flag], address, &why))
      return usage_error(where, std::string(flag) + ": " + why + " (e.g. " + flag + " :9443)");
  }
  if (flags.count("--kubeconfig")) settings.kubeconfig = flags["--kubeconfig"];
  if (flags.count("--image")) settings.inject.image = flags["--image"];
  settings.inject.legacy_sidecar = flags.count("--legacy-sidecar") != 0;
  settings.inject.mtls = flags.count("--no-mtls") == 0;
  if (int code = read_inject_options(where, flags, &settings.inject); code >= 0) return code;
  h2mesh::log::Level level = h2mesh::log::Level::Info;
  if (flags.count("--log-level") && !h2mesh::log::parse_level(flags["--log-level"], &level)) {
    return usage_error(where, "unknown log level '" + flags["--log-level"] + "'",
                       flags["--log-level"], {"debug", "info", "warn", "error"});
  }
  h2mesh::log::set_level(level);
  return h2mesh::webhook::run_webhook(settings);
}

int load(const std::string& path, h2mesh::config::Config* out) {
  auto result = h2mesh::config::load_config_file(path);
  if (!result.ok()) {
    for (const auto& e : result.errors) fprintf(stderr, "%s\n", e.to_string().c_str());
    fprintf(stderr, "%zu error(s) in %s\n", result.errors.size(), path.c_str());
    return 1;
  }
  *out = std::move(*result.config);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string_view first = argv[1];
  if (first == "--help" || first == "-h") {
    usage(stdout);
    return 0;
  }
  const Command* cmd = find_command(first == "--version" ? "version" : first);
  if (!cmd) {
    std::vector<std::string_view> names;
    for (const Command& c : commands()) names.push_back(c.name);
    names.push_back("--help");
    names.push_back("--version");
    return usage_error("h2mesh", "unknown command '" + std::string(first) + "'", first, names);
  }
  const std::string name = cmd->name;
  if (name == "help") {
    if (argc == 2) {
      usage(stdout);
      return 0;
    }
    const Command* about = argc == 3 ? find_command(argv[2]) : nullptr;
    if (!about) return usage_error("h2mesh help", "no command '" + std::string(argv[2]) + "'");
    command_usage(*about, stdout);
    return 0;
  }
  if (name == "iptables") return h2mesh::mesh::iptables_main({argv + 2, argv + argc});
  std::map<std::string, std::string> flags;
  if (int code = read_flags(*cmd, argc, argv, &flags); code >= 0) return code;
  if (name == "version") {
    printf("h2mesh %s\n", H2MESH_VERSION);
    return 0;
  }
  if (name == "inject" || name == "uninject") return rewrite_manifest(name, flags);
  if (name == "wait-ready") return wait_ready_command(flags);
  if (name == "top") return top_command(flags);
  if (name == "webhook") return run_webhook_command(flags);
  if (name == "demo") {
    int calls = flags.count("--calls") ? atoi(flags["--calls"].c_str()) : 24;
    if (calls <= 0 || calls % 4 != 0)
      return usage_error("h2mesh demo", "--calls must be a positive multiple of 4");
    return flags.count("--mesh") ? h2mesh::server::run_mesh_demo(calls)
                                 : h2mesh::server::run_demo(calls);
  }
  // run and check
  const bool mesh = flags.count("--mesh") != 0;
  if (!mesh) {
    for (const char* f :
         {"--kubeconfig", "--namespaces", "--outbound-port", "--admin", "--opaque-ports",
          "--inbound-port", "--mesh-cert", "--mesh-key", "--mesh-ca", "--mtls-mode",
          "--otlp-endpoint", "--trace-sample-ratio", "--access-log", "--access-log-format"}) {
      if (flags.count(f))
        return usage_error("h2mesh " + name, std::string(f) + " is a mesh setting: add --mesh");
    }
  }
  if (!flags.count("--config") && !mesh)
    return usage_error("h2mesh " + name, name == "run" ? "--config FILE is required (or --mesh)"
                                                       : "--config FILE is required");
  // Flags first, then the environment (a sidecar's container spec sets env more easily).
  for (auto [flag, env] : {std::pair{"--kubeconfig", "H2MESH_KUBECONFIG"},
                           {"--namespaces", "H2MESH_NAMESPACES"},
                           {"--outbound-port", "H2MESH_OUTBOUND_PORT"},
                           {"--admin", "H2MESH_ADMIN"},
                           {"--opaque-ports", "H2MESH_OPAQUE_PORTS"},
                           {"--inbound-port", "H2MESH_INBOUND_PORT"},
                           {"--mesh-cert", "H2MESH_MESH_CERT"},
                           {"--mesh-key", "H2MESH_MESH_KEY"},
                           {"--mesh-ca", "H2MESH_MESH_CA"},
                           {"--mtls-mode", "H2MESH_MTLS_MODE"},
                           {"--otlp-endpoint", "H2MESH_OTLP_ENDPOINT"},
                           {"--trace-sample-ratio", "H2MESH_TRACE_SAMPLE_RATIO"},
                           {"--access-log", "H2MESH_ACCESS_LOG"},
                           {"--access-log-format", "H2MESH_ACCESS_LOG_FORMAT"},
                           {"--log-level", "H2MESH_LOG_LEVEL"}}) {
    const char* value = getenv(env);
    if (mesh && !flags.count(flag) && value && *value) flags[flag] = value;
  }
  h2mesh::config::MeshFlags mesh_flags;
  if (mesh) {
    std::string error;
    if (!h2mesh::config::parse_mesh_flags(flags, &mesh_flags, &error))
      return usage_error("h2mesh run", error);
  }
  // A bad flag is a usage error (exit code 2) before the config is even read.
  h2mesh::log::Level flag_level = h2mesh::log::Level::Info;
  if (flags.count("--log-level") && !h2mesh::log::parse_level(flags["--log-level"], &flag_level)) {
    return usage_error("h2mesh run", "unknown log level '" + flags["--log-level"] + "'",
                       flags["--log-level"], {"debug", "info", "warn", "error"});
  }
  const std::string path = flags.count("--config") ? flags["--config"] : std::string();
  h2mesh::config::Config config;
  if (!path.empty() && load(path, &config) != 0) return 1;
  if (mesh) {
    std::string error;
    if (!h2mesh::config::apply_mesh_flags(mesh_flags, &config, &error)) {
      fprintf(stderr, "h2mesh run: %s\n", error.c_str());
      return 1;
    }
  }
  if (name == "check") {
    // The config may be right and its TLS files wrong: read every one, as `run` would (the
    // listeners', the clusters' and the mesh's).
    size_t tls_errors = 0;
    const int64_t now = static_cast<int64_t>(time(nullptr));
    auto report = [&](const std::string& owner,
                      const std::vector<h2mesh::net::TlsFileProblem>& problems) {
      for (const auto& p : problems) {
        fprintf(stderr, "%s: %s: %s: %s\n", path.c_str(), p.error ? "error" : "warning",
                owner.c_str(), p.message.c_str());
        if (p.error) ++tls_errors;
      }
    };
    for (const auto& l : config.listeners) {
      if (!l.tls) continue;
      for (const auto& c : l.tls->certificates)
        report("listener " + l.name, h2mesh::net::check_certificate_pair(c.cert, c.key, now));
      if (!l.tls->ca.empty())
        report("listener " + l.name, h2mesh::net::check_ca_bundle(l.tls->ca, now));
    }
    if (config.mesh.enabled && config.mesh.tls) {
      const auto& t = *config.mesh.tls;
      report("mesh", h2mesh::net::check_certificate_pair(t.cert, t.key, now));
      report("mesh", h2mesh::net::check_ca_bundle(t.ca, now));
    }
    for (const auto& c : config.clusters) {
      if (!c.tls) continue;
      // No `ca`: the system's store, which is not h2mesh's to judge.
      if (!c.tls->ca.empty())
        report("cluster " + c.name, h2mesh::net::check_ca_bundle(c.tls->ca, now));
      if (!c.tls->cert.empty())
        report("cluster " + c.name, h2mesh::net::check_certificate_pair(c.tls->cert, c.tls->key, now));
    }
    if (tls_errors) {
      fprintf(stderr, "%s: %zu TLS file error(s)\n", path.c_str(), tls_errors);
      return 1;
    }
    if (config.access_log) {  // `run` would stop at it
      const std::string problem = h2mesh::observe::check_access_log_path(config.access_log->path);
      if (!problem.empty()) {
        fprintf(stderr, "%s: error: %s\n", path.c_str(), problem.c_str());
        return 1;
      }
    }
    printf("%s: OK (%zu listener(s), %zu cluster(s)%s)\n", path.c_str(), config.listeners.size(),
           config.clusters.size(),
           config.mesh.enabled
               ? (", mesh mode on outbound port " + std::to_string(config.mesh.outbound_port) +
                  ", " + std::to_string(config.mesh.services.size()) + " Service override(s)")
                     .c_str()
               : "");
    return 0;
  }
  h2mesh::log::Level level = flag_level;
  if (!flags.count("--log-level") && !h2mesh::log::parse_level(config.log_level, &level)) {
    fprintf(stderr, "%s: unknown log level '%s'\n", path.c_str(), config.log_level.c_str());
    return 1;
  }
  h2mesh::log::set_level(level);
  std::optional<h2mesh::config::MeshFlags> reapply;
  if (mesh) reapply = mesh_flags;
  h2mesh::server::Server server(std::move(config), path, std::move(reapply));
  return server.run();
}
