// h2mesh: per-call gRPC (HTTP/2) load balancer.

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "config/mesh_flags.h"
#include "config/parser.h"
#include "mesh/iptables_command.h"
#include "server/demo.h"
#include "server/server.h"

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
       "             [--outbound-port PORT] [--admin ADDRESS] [--log-level debug|info|warn|error]",
       "serve with the config in FILE (--log-level overrides its log_level); with --mesh, as a\n"
       "      sidecar: redirected outbound TCP, every Kubernetes Service balanced per call, no\n"
       "      config needed (flags, or H2MESH_KUBECONFIG, H2MESH_NAMESPACES, H2MESH_OUTBOUND_PORT,\n"
       "      H2MESH_ADMIN, H2MESH_LOG_LEVEL, override the config's mesh block)",
       {"--config", "--log-level", "--kubeconfig", "--namespaces", "--outbound-port", "--admin"},
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
    for (const char* f : {"--kubeconfig", "--namespaces", "--outbound-port", "--admin"}) {
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
