// `h2mesh demo --mesh`: the mesh story in network namespaces (src/lab). A node with
// kube-proxy-like DNAT for the greeter Service's ClusterIP, 4 greeter pods, a client pod whose
// /etc/hosts resolves the Service's DNS name, and a small Kubernetes API server on the node. The
// same unchanged greeter client runs twice in the client pod: without the sidecar (the DNAT
// picks one pod per connection, so every call lands there) and with it (`h2mesh iptables
// install`, then `h2mesh run --mesh` as uid 1337: every call is balanced).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "lab/kube_api_server.h"
#include "lab/kube_objects.h"
#include "lab/lab.h"
#include "server/demo.h"

namespace h2mesh::server {
namespace {

constexpr int kPods = 4;
constexpr const char* kNamespace = "grpcdemo";
constexpr const char* kService = "greeter";
constexpr const char* kPortName = "grpc";
constexpr const char* kClusterIp = "10.96.0.10";
constexpr uint16_t kPort = 50051;
constexpr const char* kServiceHost = "greeter.grpcdemo.svc.cluster.local";
constexpr uid_t kSidecarUid = 1337;
constexpr uint16_t kSidecarAdminPort = 15000;
constexpr uint16_t kInboundPort = 15006;
constexpr const char* kClientServiceAccount = "greeter-client";
constexpr const char* kToken = "h2mesh-demo-token";
const auto kStartTimeout = std::chrono::seconds(20);
const auto kClientTimeout = std::chrono::seconds(60);

volatile sig_atomic_t g_interrupted = 0;

void on_signal(int) { g_interrupted = 1; }

// Ctrl-C or a SIGTERM ends the demo through the normal way out, so that the lab's destructor
// removes the namespaces; a second one is fatal as usual.
class InterruptGuard {
 public:
  InterruptGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

bool interrupted() { return g_interrupted != 0; }

// Waits for a process to exit, giving up early on Ctrl-C.
std::optional<int> wait_exit(Subprocess& p, Duration timeout) {
  auto deadline = Clock::now() + timeout;
  while (!interrupted() && Clock::now() < deadline) {
    if (auto code = p.wait(std::chrono::milliseconds(20))) return code;
  }
  return std::nullopt;
}

std::string join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// The last `n` lines of `text`, for an error message.
std::string last_lines(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += lines[i] + "\n";
  return out;
}

// A listening TCP socket on ip:0 in the node namespace, for the API server.
Result<int> listen_in_node(const lab::Lab& lab) {
  auto fd = lab::socket_in(lab.node_netns(), AF_INET, SOCK_STREAM);
  if (!fd) return fd.error();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, lab.node_ip().c_str(), &addr.sin_addr);
  if (::bind(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(*fd, 64) != 0) {
    int err = errno;
    ::close(*fd);
    return make_error(ErrorCode::Io, "API server: bind " + lab.node_ip() + ": " + strerror(err));
  }
  return *fd;
}

lab::ServiceObject greeter_service() {
  return {kNamespace, kService, kClusterIp, {{kPortName, kPort, kPort, "kubernetes.io/h2c"}}};
}

// The Service's EndpointSlice with the pods that are ready: a MODIFIED on every open watch.
void publish_endpoints(lab::ObjectStore& store, const std::vector<lab::Pod>& ready) {
  lab::EndpointSliceObject slice{kNamespace,
                                 std::string(kService) + "-lab01",
                                 kService,
                                 {},
                                 {{kPortName, kPort, 0, "kubernetes.io/h2c"}}};
  for (const auto& p : ready) slice.endpoints.push_back({p.ip, true, true, false, p.name});
  store.put_slice(slice);
}

// The node's DNAT for the same pods.
lab::ServiceRule greeter_rule(const std::vector<lab::Pod>& ready) {
  lab::ServiceRule rule{kNamespace, kService, kPortName, kClusterIp, kPort, kPort, {}};
  for (const auto& p : ready) rule.endpoints.push_back(p.ip);
  return rule;
}

std::string kubeconfig_text(const std::string& server) {
  return "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: " + server +
         "\nusers:\n- name: h2mesh\n  user:\n    token: " + kToken +
         "\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: h2mesh\n"
         "    namespace: " +
         kNamespace + "\ncurrent-context: lab\n";
}

class MeshDemo {
 public:
  MeshDemo(std::string bin, std::string dir, int calls)
      : bin_(std::move(bin)), dir_(std::move(dir)), calls_(calls),
        openssl_(lab::find_tool("openssl")) {}
  int run();

 private:
  bool fail(const std::string& message) {
    fprintf(stderr, "demo: %s\n", message.c_str());
    return false;
  }
  bool build_cluster();
  // The mesh CA and each pod's certificate (its SPIFFE ID as URI SAN), with the openssl CLI, as
  // cert-manager's csi-driver makes them in a cluster. Files in <dir>/pki, readable by uid 1337.
  bool make_ca();
  bool make_certificate(const std::string& pod, const std::string& service_account);
  // The pod's own sidecar: inbound interception and `h2mesh run --mesh` with its certificate.
  bool start_pod_sidecar(const lab::Pod& pod);
  std::vector<std::string> mesh_tls_flags(const std::string& pod) const;
  bool wait_ready(const lab::Pod& pod, Subprocess& sidecar, const std::string& log);
  std::optional<uint64_t> metric(const lab::Pod& pod, const std::string& series);
  bool start_sidecar();
  std::optional<Run> call(const std::string& log);
  bool sidecar_ready();

  const std::string bin_, dir_;
  const int calls_;
  // Declared first, destroyed last: the processes below run inside its namespaces.
  std::unique_ptr<lab::Lab> lab_;
  lab::ObjectStore store_;
  std::unique_ptr<lab::KubeApiServer> api_;
  std::vector<std::unique_ptr<Subprocess>> greeters_;
  std::vector<lab::Pod> ready_;
  lab::Pod client_;
  std::unique_ptr<Subprocess> sidecar_;
  std::vector<std::unique_ptr<Subprocess>> pod_sidecars_;
  std::string kubeconfig_;
  std::string pki_;
  std::string openssl_;
};

bool MeshDemo::make_ca() {
  pki_ = dir_ + "/pki";
  ::mkdir(pki_.c_str(), 0755);
  auto r = run_command({openssl_, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", pki_ + "/ca.key",
                        "-out", pki_ + "/ca.crt", "-days", "1", "-subj", "/CN=h2mesh demo mesh CA",
                        "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                        "keyUsage=critical,keyCertSign"});
  if (!r || r->exit_code != 0)
    return fail("openssl could not make the mesh CA: " + (r ? r->err : r.error().message));
  return true;
}

bool MeshDemo::make_certificate(const std::string& pod, const std::string& service_account) {
  const std::string base = pki_ + "/" + pod;
  const std::string id =
      "spiffe://cluster.local/ns/" + std::string(kNamespace) + "/sa/" + service_account;
  std::ofstream(base + ".ext") << "subjectAltName=URI:" << id
                               << "\nextendedKeyUsage=serverAuth,clientAuth\n"
                                  "basicConstraints=critical,CA:FALSE\n";
  auto csr = run_command({openssl_, "req", "-new", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", base + ".key",
                          "-out", base + ".csr", "-subj", "/CN=" + pod});
  if (!csr || csr->exit_code != 0)
    return fail("openssl could not make " + pod + "'s key: " + (csr ? csr->err : csr.error().message));
  auto crt = run_command({openssl_, "x509", "-req", "-in", base + ".csr", "-CA", pki_ + "/ca.crt",
                          "-CAkey", pki_ + "/ca.key", "-CAcreateserial", "-days", "1", "-out",
                          base + ".crt", "-extfile", base + ".ext"});
  if (!crt || crt->exit_code != 0)
    return fail("openssl could not sign " + pod + "'s certificate: " +
                (crt ? crt->err : crt.error().message));
  chmod((base + ".key").c_str(), 0644);  // the sidecar runs as uid 1337
  return true;
}

std::vector<std::string> MeshDemo::mesh_tls_flags(const std::string& pod) const {
  return {"--mesh-cert", pki_ + "/" + pod + ".crt", "--mesh-key", pki_ + "/" + pod + ".key",
          "--mesh-ca", pki_ + "/ca.crt"};
}

bool MeshDemo::wait_ready(const lab::Pod& pod, Subprocess& sidecar, const std::string& log) {
  auto deadline = Clock::now() + kStartTimeout;
  while (!interrupted()) {
    if (!sidecar.running())
      return fail("the sidecar of " + pod.name + " exited:\n" +
                  last_lines(sidecar.read_all(Subprocess::Stream::Stderr), 5));
    auto reply = lab::http_get_in(pod.netns, "127.0.0.1", kSidecarAdminPort, "/ready", 1000);
    if (reply && reply->status == 200) return true;
    if (Clock::now() >= deadline)
      return fail("the sidecar's /ready did not say ready within 20 s (see " + dir_ + "/" + log +
                  ".err)");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling its admin page
  }
  return false;
}

std::optional<uint64_t> MeshDemo::metric(const lab::Pod& pod, const std::string& series) {
  auto reply = lab::http_get_in(pod.netns, "127.0.0.1", kSidecarAdminPort, "/metrics", 5000);
  if (!reply || reply->status != 200) return std::nullopt;
  std::istringstream in(reply->body);
  for (std::string line; std::getline(in, line);)
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ')
      return std::stoull(line.substr(series.size() + 1));
  return std::nullopt;
}

bool MeshDemo::start_pod_sidecar(const lab::Pod& pod) {
  if (!make_certificate(pod.name, kService)) return false;
  auto installed = lab_->run(&pod, {bin_ + "/h2mesh", "iptables", "install", "--inbound-port",
                                    std::to_string(kInboundPort)});
  if (!installed) return fail(installed.error().message);
  std::vector<std::string> argv = {bin_ + "/h2mesh", "run", "--mesh", "--kubeconfig", kubeconfig_,
                                   "--admin", "127.0.0.1:" + std::to_string(kSidecarAdminPort)};
  for (const std::string& f : mesh_tls_flags(pod.name)) argv.push_back(f);
  const std::string log = pod.name + "-sidecar";
  auto p = Subprocess::spawn(lab_->exec_argv(pod, argv, kSidecarUid), dir_, log);
  if (!p) return fail(p.error().message);
  pod_sidecars_.push_back(std::move(*p));
  return wait_ready(pod, *pod_sidecars_.back(), log);
}

bool MeshDemo::build_cluster() {
  auto lab = lab::Lab::create({dir_});
  if (!lab) return fail(lab.error().message);
  lab_ = std::move(*lab);
  auto fd = listen_in_node(*lab_);
  if (!fd) return fail(fd.error().message);
  store_.put_service(greeter_service());
  publish_endpoints(store_, ready_);
  api_ = std::make_unique<lab::KubeApiServer>(store_, *fd, lab::KubeApiServer::Settings{kToken});
  const std::string server = "http://" + lab_->node_ip() + ":" + std::to_string(api_->port());
  printf("  node     %-12s bridge br0 (the pods' gateway), kube-proxy DNAT, API server %s\n",
         lab_->node_ip().c_str(), server.c_str());
  // Readable by the sidecars' uid: the demo directory is made 0755 for the same reason.
  kubeconfig_ = dir_ + "/kubeconfig";
  std::ofstream(kubeconfig_) << kubeconfig_text(server);
  chmod(kubeconfig_.c_str(), 0644);
  if (!make_ca()) return false;
  printf("  mesh CA  %-12s %s/ca.crt (openssl): each pod's certificate names its SPIFFE ID\n", "",
         pki_.c_str());

  for (int i = 1; i <= kPods && !interrupted(); ++i) {
    const std::string name = "greeter-" + std::to_string(i);
    auto pod = lab_->add_pod(name);
    if (!pod) return fail(pod.error().message);
    auto p =
        Subprocess::spawn(lab_->exec_argv(*pod, {bin_ + "/greeter", "serve", "--address", "0.0.0.0",
                                                 "--port", std::to_string(kPort), "--id", name}),
                          dir_, name);
    if (!p) return fail(p.error().message);
    auto line = (*p)->wait_for_line(
        Subprocess::Stream::Stdout,
        [](const std::string& l) { return l.find(" listening on ") != std::string::npos; },
        kStartTimeout);
    if (!line) return fail(name + " did not start (see " + dir_ + "/" + name + ".err)");
    greeters_.push_back(std::move(*p));
    // Its sidecar takes the connections arriving at the pod: mesh mTLS from other sidecars,
    // clear text from clients without one.
    if (!start_pod_sidecar(*pod)) return false;
    // Ready: into the EndpointSlice (a MODIFIED on the API server's watches) and the DNAT.
    ready_.push_back(*pod);
    publish_endpoints(store_, ready_);
    if (auto ok = lab_->set_service(greeter_rule(ready_)); !ok) return fail(ok.error().message);
    printf("  pod      %-12s %s: greeter serve --port %u --id %s, with its sidecar (inbound,\n"
           "                        spiffe://cluster.local/ns/%s/sa/%s)\n",
           pod->ip.c_str(), name.c_str(), kPort, name.c_str(), kNamespace, kService);
  }
  if (interrupted()) return false;
  printf("  Service  %-12s %s/%s port %s %u -> %d pods (one pod per connection, at random)\n",
         kClusterIp, kNamespace, kService, kPortName, kPort, kPods);

  auto client = lab_->add_pod("client");
  if (!client) return fail(client.error().message);
  client_ = *client;
  if (auto ok = lab_->set_hosts(
          "client",
          {{kClusterIp, std::string(kServiceHost) + " greeter.grpcdemo.svc greeter.grpcdemo"}});
      !ok)
    return fail(ok.error().message);
  printf("  pod      %-12s client: /etc/hosts has %s -> %s\n", client_.ip.c_str(), kServiceHost,
         kClusterIp);
  return make_certificate("client", kClientServiceAccount);
}

std::optional<Run> MeshDemo::call(const std::string& log) {
  auto p = Subprocess::spawn(
      lab_->exec_argv(client_, {bin_ + "/greeter", "call", "--target",
                                std::string(kServiceHost) + ":" + std::to_string(kPort), "-n",
                                std::to_string(calls_)}),
      dir_, log);
  if (!p) {
    fail(p.error().message);
    return std::nullopt;
  }
  if (!wait_exit(**p, kClientTimeout)) {
    fail("the greeter client did not finish (see " + dir_ + "/" + log + ".err)");
    return std::nullopt;
  }
  return count_replies((*p)->read_all(Subprocess::Stream::Stdout));
}

bool MeshDemo::sidecar_ready() {
  auto reply = lab::http_get_in(client_.netns, "127.0.0.1", kSidecarAdminPort, "/ready", 1000);
  return reply && reply->status == 200;
}

bool MeshDemo::start_sidecar() {
  printf("[client]$ h2mesh iptables install\n");
  auto installed = lab_->run(&client_, {bin_ + "/h2mesh", "iptables", "install"});
  if (!installed) return fail(installed.error().message);

  std::vector<std::string> argv = {bin_ + "/h2mesh",
                                   "run",
                                   "--mesh",
                                   "--kubeconfig",
                                   kubeconfig_,
                                   "--admin",
                                   "127.0.0.1:" + std::to_string(kSidecarAdminPort)};
  for (const std::string& f : mesh_tls_flags("client")) argv.push_back(f);
  printf("[client]$ %s   (as uid %u)\n", join(argv).substr(bin_.size() + 1).c_str(), kSidecarUid);
  auto p = Subprocess::spawn(lab_->exec_argv(client_, argv, kSidecarUid), dir_, "sidecar");
  if (!p) return fail(p.error().message);
  sidecar_ = std::move(*p);
  auto deadline = Clock::now() + kStartTimeout;
  while (!interrupted()) {
    if (!sidecar_->running())
      return fail("the sidecar exited:\n" +
                  last_lines(sidecar_->read_all(Subprocess::Stream::Stderr), 5));
    if (sidecar_ready()) return true;
    if (Clock::now() >= deadline)
      return fail("the sidecar's /ready did not say ready within 20 s (see " + dir_ +
                  "/sidecar.err)");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling its admin page
  }
  return false;
}

int MeshDemo::run() {
  if (!build_cluster()) return interrupted() ? 130 : 1;
  const std::string call_line = "greeter call --target " + std::string(kServiceHost) + ":" +
                                std::to_string(kPort) + " -n " + std::to_string(calls_);
  printf("\n[client]$ %s\n", call_line.c_str());
  auto before = call("client-before");
  if (!before) return interrupted() ? 130 : 1;
  if (!start_sidecar()) return interrupted() ? 130 : 1;
  printf("[client]$ %s\n", call_line.c_str());
  auto after = call("client-after");
  if (!after) return interrupted() ? 130 : 1;

  printf("\nWithout the sidecar:\n");
  for (const auto& l : before->sample) printf("    %s\n", l.c_str());
  printf("    ...\nWith the sidecar:\n");
  for (const auto& l : after->sample) printf("    %s\n", l.c_str());
  printf("\nCalls per pod: %d unary calls over ONE HTTP/2 connection to %s:%u\n\n", calls_,
         kServiceHost, kPort);
  std::vector<std::string> ids;
  for (const auto& p : ready_) ids.push_back(p.name);
  print_table({"pod", "without sidecar (L4)", "with sidecar (L7)"}, ids, *before, *after);

  // Who the greeter pods' sidecars saw calling: the client's SPIFFE ID, for every call.
  const std::string client_id =
      "spiffe://cluster.local/ns/" + std::string(kNamespace) + "/sa/" + kClientServiceAccount;
  uint64_t over_mtls = 0;
  for (const auto& pod : ready_)
    over_mtls +=
        metric(pod, "h2mesh_inbound_calls_total{identity=\"" + client_id + "\"}").value_or(0);
  const uint64_t mtls_connections =
      metric(client_, "h2mesh_mesh_originations_total{outcome=\"mtls\"}").value_or(0);

  sidecar_->send_signal(SIGTERM);
  auto sidecar_exit = wait_exit(*sidecar_, std::chrono::seconds(30));
  for (auto& p : pod_sidecars_) p->send_signal(SIGTERM);
  for (auto& p : pod_sidecars_) (void)wait_exit(*p, std::chrono::seconds(10));
  for (auto& g : greeters_) g->send_signal(SIGTERM);
  for (auto& g : greeters_) (void)wait_exit(*g, std::chrono::seconds(10));

  const bool pinned = before->per_backend.size() == 1 && before->failed == 0;
  const int share = calls_ / kPods;
  bool spread = after->failed == 0 && after->per_backend.size() == static_cast<size_t>(kPods);
  for (const auto& [id, n] : after->per_backend)
    spread = spread && n >= share - 1 && n <= share + 1;
  if (pinned)
    printf(
        "Without the sidecar: all %d calls answered by %s: kube-proxy balanced the one "
        "connection.\n",
        calls_, before->per_backend.begin()->first.c_str());
  if (spread)
    printf(
        "With the sidecar: every pod answered %d±1 calls: balanced per call, same client, "
        "same name.\n",
        share);
  const bool mtls = over_mtls == static_cast<uint64_t>(calls_);
  if (mtls)
    printf(
        "Over mTLS: the client's sidecar opened %llu mTLS connections, one per pod; the pods'\n"
        "sidecars saw all %d calls from %s and gave the apps clear text.\n",
        static_cast<unsigned long long>(mtls_connections), calls_, client_id.c_str());
  else
    fprintf(stderr, "demo: only %llu of the %d calls reached the pods' sidecars over mTLS\n",
            static_cast<unsigned long long>(over_mtls), calls_);
  if (!sidecar_exit || *sidecar_exit != 0) {
    fprintf(stderr, "demo: the sidecar did not exit cleanly on SIGTERM (see %s/sidecar.err)\n",
            dir_.c_str());
    return 1;
  }
  return pinned && spread && mtls ? 0 : 1;
}

}  // namespace

int run_mesh_demo(int calls) {
  if (geteuid() != 0) {
    fprintf(stderr,
            "h2mesh demo --mesh: needs root: it creates network namespaces, veth pairs and "
            "iptables rules (and removes them). Run it with sudo, or run `h2mesh demo` for the "
            "demo on loopback.\n");
    return 1;
  }
  const std::string bin = self_dir();
  for (const char* b : {"greeter", "h2mesh"}) {
    if (access((bin + "/" + b).c_str(), X_OK) != 0) {
      fprintf(stderr, "demo: cannot find the %s binary next to h2mesh (%s)\n", b, bin.c_str());
      return 1;
    }
  }
  for (const char* t : {"ip", "iptables-restore", "setpriv", "openssl"}) {
    if (lab::find_tool(t).empty()) {
      fprintf(stderr, "demo: `%s` not found (Debian: apt-get install %s)\n", t,
              std::string(t) == "ip"        ? "iproute2"
              : std::string(t) == "setpriv" ? "util-linux"
              : std::string(t) == "openssl" ? "openssl"
                                            : "iptables");
      return 1;
    }
  }
  // Line by line even into a file or a pipe: a test (or a person) follows the steps as they
  // happen, and the errors on stderr stay in order with them.
  setvbuf(stdout, nullptr, _IOLBF, 0);
  char tmpl[] = "/tmp/h2mesh-demo-XXXXXX";
  if (!mkdtemp(tmpl)) {
    perror("demo: mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  chmod(dir.c_str(), 0755);  // the sidecar (uid 1337) reads its kubeconfig from here
  printf("h2mesh demo --mesh (logs in %s)\n\n", dir.c_str());
  printf("A cluster in network namespaces h2lab-%d-* (all removed at the end):\n\n",
         static_cast<int>(getpid()));
  InterruptGuard guard;
  int code = MeshDemo(bin, dir, calls).run();
  if (interrupted()) fprintf(stderr, "demo: interrupted; everything it made is removed\n");
  return code;
}

}  // namespace h2mesh::server
