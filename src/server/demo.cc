#include "server/demo.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "server/tcp_balancer.h"

namespace h2mesh::server {
namespace {

constexpr int kBackends = 4;
const auto kStartTimeout = std::chrono::seconds(20);

// Runs `greeter call` and counts the replies per backend from its "#i - Greeting:" lines.
std::optional<Run> run_client(const std::string& greeter, uint16_t port, int calls,
                              const std::string& dir, const std::string& name) {
  auto p = Subprocess::spawn({greeter, "call", "--target", "127.0.0.1:" + std::to_string(port),
                              "-n", std::to_string(calls)},
                             dir, name);
  if (!p) return std::nullopt;
  if (!(*p)->wait(std::chrono::seconds(60))) return std::nullopt;
  return count_replies((*p)->read_all(Subprocess::Stream::Stdout));
}

std::optional<uint16_t> port_from_line(const std::optional<std::string>& line) {
  if (!line) return std::nullopt;
  size_t colon = line->rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  return static_cast<uint16_t>(std::stoi(line->substr(colon + 1)));
}

}  // namespace

Run count_replies(const std::string& client_output) {
  Run run;
  std::regex hello(R"(^#\d+ - Greeting: Hello from ([^,]+),)");
  std::istringstream lines(client_output);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (std::regex_search(line, m, hello)) {
      run.per_backend[m[1]]++;
      if (run.sample.size() < 3) run.sample.push_back(line);
    } else if (line.find(" - error:") != std::string::npos) {
      run.failed++;
    }
  }
  return run;
}

void print_table(const TableColumns& columns, const std::vector<std::string>& ids,
                 const Run& before, const Run& after) {
  // Each count column is as wide as its title and three more (the first demo's layout).
  const int wb = static_cast<int>(strlen(columns.before)) + 3;
  const int wa = static_cast<int>(strlen(columns.after)) + 3;
  printf("  %-12s  %*s  %*s\n", columns.row, wb, columns.before, wa, columns.after);
  printf("  %-12s  %s  %s\n", "------------", std::string(wb, '-').c_str(),
         std::string(wa, '-').c_str());
  for (const auto& id : ids) {
    auto get = [&](const Run& r) {
      auto it = r.per_backend.find(id);
      return it == r.per_backend.end() ? 0 : it->second;
    };
    printf("  %-12s  %*d  %*d\n", id.c_str(), wb, get(before), wa, get(after));
  }
  printf("  %-12s  %*d  %*d\n\n", "failed", wb, before.failed, wa, after.failed);
}

int run_demo(int calls) {
  std::string bin = self_dir();
  std::string greeter = bin + "/greeter";
  std::string h2mesh = bin + "/h2mesh";
  if (access(greeter.c_str(), X_OK) != 0) {
    fprintf(stderr, "demo: cannot find the greeter binary next to h2mesh (%s)\n", greeter.c_str());
    return 1;
  }
  char tmpl[] = "/tmp/h2mesh-demo-XXXXXX";
  if (!mkdtemp(tmpl)) {
    perror("demo: mkdtemp");
    return 1;
  }
  std::string dir = tmpl;
  printf("h2mesh demo (logs in %s)\n\n", dir.c_str());

  std::vector<std::unique_ptr<Subprocess>> backends;
  std::vector<config::SocketAddress> addrs;
  std::vector<std::string> ids;
  for (int i = 1; i <= kBackends; ++i) {
    std::string id = "greeter-" + std::to_string(i);
    auto p = Subprocess::spawn({greeter, "serve", "--address", "127.0.0.1", "--port", "0", "--id", id},
                               dir, id);
    if (!p) return 1;
    auto port = port_from_line((*p)->wait_for_line(
        Subprocess::Stream::Stdout,
        [](const std::string& l) { return l.find(" listening on ") != std::string::npos; },
        kStartTimeout));
    if (!port) {
      fprintf(stderr, "demo: %s did not start (see %s/%s.err)\n", id.c_str(), dir.c_str(), id.c_str());
      return 1;
    }
    printf("  started %s on 127.0.0.1:%u\n", id.c_str(), *port);
    addrs.push_back(config::SocketAddress{"127.0.0.1", *port});
    ids.push_back(id);
    backends.push_back(std::move(*p));
  }

  // Before: a connection-level balancer, like a Kubernetes Service.
  TcpBalancer l4(addrs);
  auto l4_port = l4.start();
  if (!l4_port) return 1;
  printf("  started the L4 balancer (round robin per TCP connection) on 127.0.0.1:%u\n", *l4_port);

  // After: h2mesh, balancing every call.
  std::string cfg_path = dir + "/h2mesh.yaml";
  {
    std::ofstream cfg(cfg_path);
    cfg << "workers: 1\nadmin:\n  address: \"127.0.0.1:0\"\nlisteners:\n"
           "  - name: grpc\n    address: \"127.0.0.1:0\"\n    routes:\n      - cluster: greeter\n"
           "clusters:\n  - name: greeter\n    lb_policy: round_robin\n    endpoints:\n";
    for (const auto& a : addrs) cfg << "      - \"" << a.to_string() << "\"\n";
  }
  auto mesh = Subprocess::spawn({h2mesh, "run", "--config", cfg_path}, dir, "h2mesh");
  if (!mesh) return 1;
  auto mesh_port = port_from_line((*mesh)->wait_for_line(
      Subprocess::Stream::Stderr,
      [](const std::string& l) { return l.find("listener grpc listening on") != std::string::npos; },
      kStartTimeout));
  if (!mesh_port) {
    fprintf(stderr, "demo: h2mesh did not start (see %s/h2mesh.err)\n", dir.c_str());
    return 1;
  }
  printf("  started h2mesh (per-call round robin) on 127.0.0.1:%u\n", *mesh_port);

  printf("\n$ greeter call --target <L4 balancer> -n %d\n", calls);
  auto before = run_client(greeter, *l4_port, calls, dir, "client-l4");
  printf("$ greeter call --target <h2mesh> -n %d\n", calls);
  auto after = run_client(greeter, *mesh_port, calls, dir, "client-h2mesh");
  if (!before || !after) {
    fprintf(stderr, "demo: the greeter client did not finish\n");
    return 1;
  }
  printf("\nThrough the L4 balancer:\n");
  for (const auto& l : before->sample) printf("    %s\n", l.c_str());
  printf("    ...\nThrough h2mesh:\n");
  for (const auto& l : after->sample) printf("    %s\n", l.c_str());
  printf("\nCalls per backend: %d unary calls over ONE HTTP/2 connection\n\n", calls);
  print_table({"backend", "L4 (per connection)", "h2mesh (L7)"}, ids, *before, *after);

  (*mesh)->send_signal(SIGTERM);
  auto mesh_exit = (*mesh)->wait(std::chrono::seconds(30));
  for (auto& b : backends) b->send_signal(SIGTERM);
  for (auto& b : backends) (void)b->wait(std::chrono::seconds(10));

  bool pinned = before->per_backend.size() == 1 && before->failed == 0;
  bool spread = after->failed == 0 && after->per_backend.size() == static_cast<size_t>(kBackends);
  for (const auto& [id, n] : after->per_backend) spread = spread && n == calls / kBackends;
  if (pinned)
    printf("L4: all %d calls answered by %s: the connection is pinned to one pod.\n", calls,
           before->per_backend.begin()->first.c_str());
  if (spread) printf("h2mesh: every backend answered %d calls: balanced per call.\n", calls / kBackends);
  if (!mesh_exit || *mesh_exit != 0) {
    fprintf(stderr, "demo: h2mesh did not exit cleanly on SIGTERM\n");
    return 1;
  }
  return pinned && spread ? 0 : 1;
}

}  // namespace h2mesh::server
