// h2mesh: per-call gRPC (HTTP/2) load balancer.

#include <cstdio>
#include <cstring>
#include <string>

#include "common/log.h"
#include "config/parser.h"
#include "server/demo.h"
#include "server/server.h"

namespace {

void usage(FILE* out) {
  fprintf(out,
          "usage:\n"
          "  h2mesh run --config FILE [--log-level debug|info|warn|error]\n"
          "  h2mesh check --config FILE     validate a config and list every error\n"
          "  h2mesh demo [--calls N]        per-connection vs per-call balancing, side by side\n"
          "  h2mesh version\n");
}

const char* flag_value(int argc, char** argv, const char* name) {
  for (int i = 2; i + 1 < argc; ++i)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return nullptr;
}

int load(const char* path, h2mesh::config::Config* out) {
  auto result = h2mesh::config::load_config_file(path);
  if (!result.ok()) {
    for (const auto& e : result.errors) fprintf(stderr, "%s\n", e.to_string().c_str());
    fprintf(stderr, "%zu error(s) in %s\n", result.errors.size(), path);
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
  std::string cmd = argv[1];
  if (cmd == "version" || cmd == "--version") {
    printf("h2mesh %s\n", H2MESH_VERSION);
    return 0;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    usage(stdout);
    return 0;
  }
  if (cmd == "demo") {
    const char* n = flag_value(argc, argv, "--calls");
    int calls = n ? atoi(n) : 24;
    if (calls <= 0 || calls % 4 != 0) {
      fprintf(stderr, "demo: --calls must be a positive multiple of 4\n");
      return 2;
    }
    return h2mesh::server::run_demo(calls);
  }
  if (cmd != "run" && cmd != "check") {
    usage(stderr);
    return 2;
  }
  const char* path = flag_value(argc, argv, "--config");
  if (!path) {
    fprintf(stderr, "%s: --config FILE is required\n", cmd.c_str());
    return 2;
  }
  h2mesh::config::Config config;
  if (load(path, &config) != 0) return 1;
  if (cmd == "check") {
    printf("%s: OK (%zu listener(s), %zu cluster(s))\n", path, config.listeners.size(),
           config.clusters.size());
    return 0;
  }
  std::string level = config.log_level;
  if (const char* l = flag_value(argc, argv, "--log-level")) level = l;
  h2mesh::log::Level lvl;
  if (!h2mesh::log::parse_level(level, &lvl)) {
    fprintf(stderr, "unknown log level '%s'\n", level.c_str());
    return 2;
  }
  h2mesh::log::set_level(lvl);
  h2mesh::server::Server server(std::move(config), path);
  return server.run();
}
