// bench/service_map: what the mesh's Service map costs in memory per 1,000 watched Services.
//
//   build/bench/service_map/service_map_memory                      # N = 0, 1000, 2000, 5000
//   build/bench/service_map/service_map_memory --services 0,5000 --endpoints 3 --http
//
// For each N, in a process of its own (this program runs itself again with --one N): starts
// tests/fakes/fake_kube_apiserver.py, loads N Services (spread over 50 namespaces, one TCP port
// each, with the metadata a real API server adds: labels, an annotation, managedFields) and one
// EndpointSlice per Service with --endpoints pods (pod names, zones, node names as the
// endpoint-slice controller writes them), then runs a ServiceMapWatcher on its own event loop
// against it (the real LIST + WATCH path: HTTP, parsing, builder, published map) until the
// first map is published. Then it measures, after malloc_trim(0):
//   heap   mallinfo2(): bytes in use (arena + mmapped)
//   rss    VmRSS
//   peak   VmHWM: the high-water mark, reached while the LIST replies are parsed
// and the per-1,000 figures are the slope against N = 0 (the fixed cost of the loop, the TLS
// library and the two connections).

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/subprocess.h"
#include "discovery/service_map_watcher.h"
#include "fakes/http_client.h"
#include "net/event_loop.h"

namespace {

using namespace std::chrono_literals;
using h2mesh::Subprocess;

constexpr int kNamespaces = 50;

struct Options {
  std::vector<int> services = {0, 1000, 2000, 5000};
  int endpoints = 3;
  bool http = false;
  int one = -1;  // measure this N in this process
  std::string fake = H2MESH_FAKE_KUBE_APISERVER_PY;
};

struct Figures {
  int services = 0;
  size_t map_entries = 0;
  size_t endpoints = 0;
  double heap_kib = 0;
  double rss_kib = 0;
  double peak_kib = 0;
  double sync_ms = 0;
};

long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  size_t n = strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
      return std::stol(line.substr(n + 1));
  return -1;
}

double heap_kib() {
  struct mallinfo2 mi = mallinfo2();
  return static_cast<double>(mi.uordblks + mi.hblkhd) / 1024.0;
}

std::string service_json(int i) {
  std::string ns = "team-" + std::to_string(i % kNamespaces);
  std::string name = "svc-" + std::to_string(i);
  std::string ip = "10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
  // What kubectl apply and the API server leave on a Service: the selector, labels, the
  // last-applied annotation and managedFields (ignored by h2mesh, but parsed past).
  return R"({"namespace":")" + ns + R"(","name":")" + name + R"(","spec":{"clusterIP":")" + ip +
         R"(","selector":{"app":")" + name +
         R"("},"ports":[{"name":"grpc","port":50051,)"
         R"("targetPort":"grpc","appProtocol":"kubernetes.io/h2c"}],)"
         R"("metadata":{"labels":{"app":")" +
         name + R"(","team":")" + ns +
         R"("},"annotations":{"kubectl.kubernetes.io/last-applied-configuration":)"
         R"("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\")" +
         name +
         R"(\"},\"spec\":{\"ports\":[{\"name\":\"grpc\",\"port\":50051}]}}"},)"
         R"("managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update",)"
         R"("apiVersion":"v1","time":"2026-11-26T14:00:00Z","fieldsType":"FieldsV1","fieldsV1":)"
         R"({"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},)"
         R"("f:labels":{".":{},"f:app":{},"f:team":{}}},"f:spec":{"f:internalTrafficPolicy":{},)"
         R"("f:ports":{".":{},"k:{\"port\":50051,\"protocol\":\"TCP\"}":{".":{},"f:appProtocol":{},)"
         R"("f:name":{},"f:port":{},"f:protocol":{},"f:targetPort":{}}},"f:selector":{},)"
         R"("f:sessionAffinity":{},"f:type":{}}}}]}}})";
}

std::string slice_json(int i, int endpoints) {
  std::string ns = "team-" + std::to_string(i % kNamespaces);
  std::string name = "svc-" + std::to_string(i);
  std::string eps;
  for (int e = 0; e < endpoints; ++e) {
    int pod = i * endpoints + e;
    std::string ip = "10.244." + std::to_string(pod / 250) + "." + std::to_string(pod % 250 + 1);
    eps += std::string(e ? "," : "") + R"({"addresses":[")" + ip +
           R"("],"conditions":{"ready":true,"serving":true,"terminating":false},)"
           R"("targetRef":{"kind":"Pod","namespace":")" +
           ns + R"(","name":")" + name + "-7b8f684849-" + std::to_string(10000 + e) +
           R"(","uid":"9a1e0000-0000-4000-8000-)" + std::to_string(100000000000 + pod) +
           R"("},"nodeName":"node-)" + std::to_string(pod % 20) + R"(","zone":"zone-)" +
           std::string(1, static_cast<char>('a' + pod % 3)) + R"("})";
  }
  return R"({"namespace":")" + ns + R"(","name":")" + name + R"(-x7q2k","service":")" + name +
         R"(","addressType":"IPv4","endpoints":[)" + eps +
         R"(],"ports":[{"name":"grpc","protocol":"TCP","port":8080,"appProtocol":"kubernetes.io/h2c"}]})";
}

// Runs one N: returns false (with a message) when something did not work.
bool measure(const Options& opt, int n, Figures* out) {
  char tmpl[] = "/tmp/h2mesh-smap-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};

  std::vector<std::string> argv = {"/usr/bin/python3", opt.fake, "--dir", dir};
  if (opt.http) argv.push_back("--http");
  auto fake = Subprocess::spawn(argv, dir, "fake-kube-apiserver");
  if (!fake) {
    fprintf(stderr, "cannot start the fake API server: %s\n", fake.error().message.c_str());
    return false;
  }
  auto line = (*fake)->wait_for_line(
      Subprocess::Stream::Stdout,
      [](const std::string& l) { return l.find("listening on") != std::string::npos; }, 30s);
  std::string text = (*fake)->read_all(Subprocess::Stream::Stdout);
  std::smatch m;
  if (!line || !std::regex_search(text, m, std::regex(R"(control on http://127\.0\.0\.1:(\d+))"))) {
    fprintf(stderr, "the fake API server did not start: %s\n",
            (*fake)->read_all(Subprocess::Stream::Stderr).c_str());
    return false;
  }
  uint16_t control = static_cast<uint16_t>(std::stoi(m[1]));
  std::regex_search(text, m, std::regex(R"(listening on (https?://127\.0\.0\.1:\d+))"));
  std::string server = m[1];

  // In batches: one control request stays well within the control client's 5 s.
  constexpr int kBatch = 500;
  for (int first = 0; first < n; first += kBatch) {
    std::string services, slices;
    for (int i = first; i < std::min(n, first + kBatch); ++i) {
      services += (services.empty() ? "" : ",") + service_json(i);
      slices += (slices.empty() ? "" : ",") + slice_json(i, opt.endpoints);
    }
    auto [status, reply] = h2mesh_test_fakes::http_request(
        control, "POST", "/load",
        R"({"services":[)" + services + R"(],"slices":[)" + slices + "]}");
    if (status != 200) {
      fprintf(stderr, "loading the fake failed: %d %s\n", status, reply.c_str());
      return false;
    }
  }

  std::string kubeconfig = dir + "/kubeconfig";
  std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
                            << "    server: " << server << "\n"
                            << (opt.http ? "" : "    certificate-authority: " + dir + "/ca.crt\n")
                            << "users:\n- name: u\n  user:\n    token: test-token\n"
                            << "contexts:\n- name: c\n  context: {cluster: fake, user: u}\n"
                            << "current-context: c\n";

  h2mesh::net::EventLoop loop;
  h2mesh::discovery::ServiceMapPtr map;
  h2mesh::discovery::ServiceMapWatcher::Settings settings;
  settings.kubeconfig = kubeconfig;
  auto started = std::chrono::steady_clock::now();
  auto watcher = std::make_unique<h2mesh::discovery::ServiceMapWatcher>(
      loop, settings, [&](h2mesh::discovery::ServiceMapPtr m) {
        map = std::move(m);
        loop.stop();
      });
  h2mesh::net::Timer give_up(loop, [&] { loop.stop(); });
  give_up.arm(120s);
  loop.update_now();
  watcher->start();
  loop.run();
  if (!map) {
    fprintf(stderr, "no map within 120 s: %s\n", watcher->last_error().c_str());
    return false;
  }
  out->sync_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  malloc_trim(0);
  out->services = n;
  out->map_entries = map->services.size();
  for (const auto& s : map->services) out->endpoints += s->endpoints.size();
  out->heap_kib = heap_kib();
  out->rss_kib = static_cast<double>(status_kib("VmRSS"));
  out->peak_kib = static_cast<double>(status_kib("VmHWM"));
  if (static_cast<int>(out->map_entries) != n) {
    fprintf(stderr, "the map has %zu entries, not %d\n", out->map_entries, n);
    return false;
  }
  return true;
}

std::vector<int> parse_list(const char* text) {
  std::vector<int> out;
  for (const char* p = text; *p;) {
    out.push_back(atoi(p));
    const char* comma = strchr(p, ',');
    if (!comma) break;
    p = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--services" && i + 1 < argc) {
      opt.services = parse_list(argv[++i]);
    } else if (a == "--endpoints" && i + 1 < argc) {
      opt.endpoints = atoi(argv[++i]);
    } else if (a == "--http") {
      opt.http = true;
    } else if (a == "--one" && i + 1 < argc) {
      opt.one = atoi(argv[++i]);
    } else if (a == "--fake" && i + 1 < argc) {
      opt.fake = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--services N,N,...] [--endpoints E] [--http] [--fake PATH]\n",
              argv[0]);
      return 2;
    }
  }
  h2mesh::log::set_level(h2mesh::log::Level::Warn);

  if (opt.one >= 0) {
    Figures f;
    if (!measure(opt, opt.one, &f)) return 1;
    // One line for the parent to read.
    printf("%d %zu %zu %.0f %.0f %.0f %.0f\n", f.services, f.map_entries, f.endpoints, f.heap_kib,
           f.rss_kib, f.peak_kib, f.sync_ms);
    return 0;
  }

  // Each N in a fresh process, so that one's heap and high-water mark do not leak into the next.
  std::vector<Figures> all;
  std::string self = std::filesystem::read_symlink("/proc/self/exe");
  for (int n : opt.services) {
    std::string cmd = "'" + self + "' --one " + std::to_string(n) + " --endpoints " +
                      std::to_string(opt.endpoints) + " --fake '" + opt.fake + "'" +
                      (opt.http ? " --http" : "");
    FILE* p = popen(cmd.c_str(), "r");
    Figures f;
    int got = p ? fscanf(p, "%d %zu %zu %lf %lf %lf %lf", &f.services, &f.map_entries, &f.endpoints,
                         &f.heap_kib, &f.rss_kib, &f.peak_kib, &f.sync_ms)
                : 0;
    int rc = p ? pclose(p) : -1;
    if (got != 7 || rc != 0) {
      fprintf(stderr, "the run with %d Services failed\n", n);
      return 1;
    }
    all.push_back(f);
  }

  printf(
      "Services, one TCP port each, one EndpointSlice each with %d endpoints, %s, "
      "one process per row:\n\n",
      opt.endpoints, opt.http ? "plain HTTP" : "HTTPS");
  printf(
      "| Services | map entries | endpoints | heap KiB | RSS KiB | peak RSS KiB | first map ms "
      "|\n");
  printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& f : all)
    printf("| %d | %zu | %zu | %.0f | %.0f | %.0f | %.0f |\n", f.services, f.map_entries,
           f.endpoints, f.heap_kib, f.rss_kib, f.peak_kib, f.sync_ms);
  const Figures* base = nullptr;
  for (const auto& f : all)
    if (f.services == 0) base = &f;
  if (base) {
    printf("\nPer 1,000 Services (against 0 Services):\n\n");
    printf("| Services | heap KiB / 1,000 | RSS KiB / 1,000 | peak RSS KiB / 1,000 |\n");
    printf("|---:|---:|---:|---:|\n");
    for (const auto& f : all) {
      if (f.services == 0) continue;
      double k = 1000.0 / f.services;
      printf("| %d | %.0f | %.0f | %.0f |\n", f.services, (f.heap_kib - base->heap_kib) * k,
             (f.rss_kib - base->rss_kib) * k, (f.peak_kib - base->peak_kib) * k);
    }
  }
  return 0;
}
