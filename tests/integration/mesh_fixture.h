#pragma once

// The picture of issue 12 for mesh mode's root tests, built once per test with the network lab
// (src/lab): a node namespace with kube-proxy-like DNAT, greeter pods serving on 50051, a client
// pod whose /etc/hosts resolves the Services' DNS names, and in that client pod the Python fake
// Kubernetes API server (on 127.0.0.1: the sidecar reaches it on loopback, never redirected),
// then, when a test asks, the sidecar as a user runs it: `h2mesh iptables install` as root, then
// `h2mesh run --mesh --kubeconfig ...` as uid 1337. The Service `grpcdemo/greeter` (ClusterIP
// 10.96.0.10:50051) is both in the API server and in the node's rules; the `tcp` pod and its
// Service (10.96.0.20, several ports) come with add_tcp_pod().
//
// Everything a test starts runs in its lab's namespaces and goes with it; the fixture stops the
// processes and removes the namespaces also after a failure. Needs root: skipped otherwise.

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "fakes/fake_kube_apiserver.h"
#include "harness.h"
#include "lab/lab.h"

namespace h2mesh_test::mesh {

using Clock = std::chrono::steady_clock;

inline constexpr const char* kNamespace = "grpcdemo";
inline constexpr const char* kGreeterIp = "10.96.0.10";
inline constexpr uint16_t kGrpcPort = 50051;
inline constexpr const char* kGreeterHost = "greeter.grpcdemo.svc.cluster.local";
inline constexpr uid_t kSidecarUid = 1337;
inline constexpr uint16_t kOutboundPort = 15001;

// The `tcp` pod's servers and its Service's ports (Service port -> pod port).
inline constexpr const char* kTcpIp = "10.96.0.20";
inline constexpr const char* kTcpHost = "tcp.grpcdemo.svc.cluster.local";
inline constexpr uint16_t kEchoPort = 7000;      // echoes as it reads; closes after the client
inline constexpr uint16_t kGreetingPort = 7001;  // speaks first, then echoes
inline constexpr uint16_t kCountPort = 7002;     // reads to EOF, then answers "got N bytes fnv H"
inline constexpr uint16_t kHttpPodPort = 8080;   // python3 -m http.server (Service port 80)
inline constexpr uint16_t kTlsPodPort = 8443;    // openssl s_server -www (Service port 443)
inline constexpr uint16_t kOpaquePort = 6379;    // Service port -> 7000, opaque by default
inline constexpr uint16_t kHttpServicePort = 80;
inline constexpr uint16_t kTlsServicePort = 443;

// What `greeter call -n N` (or the Node client) printed, per answering pod.
struct CallCounts {
  std::optional<int> exit_code;  // nullopt: still running at the timeout (then killed)
  std::map<std::string, int> per_pod;
  int ok = 0;
  int failed = 0;
  std::string output;  // stdout and stderr, for messages
};

// One call of mesh_call_loop (tests/integration/mesh_call_loop.cc).
struct LoopCall {
  Clock::time_point start, end;
  bool ok = false;
  std::string pod;    // the answering pod when ok
  std::string error;  // "CODE message" otherwise
};

// mesh_call_loop running in the client pod: sequential calls over one channel until stop().
class CallLoop {
 public:
  CallLoop(std::unique_ptr<h2mesh::Subprocess> process, std::string out_path);
  ~CallLoop();
  // The calls that ended so far (reads the new lines of its output).
  const std::vector<LoopCall>& calls();
  // Waits (bounded) until `pred` holds for the calls so far; false after `timeout`.
  bool wait_until(const std::function<bool(const std::vector<LoopCall>&)>& pred,
                  std::chrono::milliseconds timeout);
  // Waits until `n` more calls ended.
  bool wait_more(size_t n, std::chrono::milliseconds timeout);
  // SIGTERM, then waits for "done ok=N failed=M"; returns false if it did not come.
  bool stop();
  int done_failed() const { return done_failed_; }
  std::string describe_failures();

 private:
  void read_new();
  std::unique_ptr<h2mesh::Subprocess> process_;
  std::string out_path_;
  size_t offset_ = 0;
  std::string partial_;
  std::vector<LoopCall> calls_;
  int done_failed_ = -1;
  bool done_ = false;
};

// Calls answered by each pod among `calls` that started at or after `from`.
std::map<std::string, int> pods_since(const std::vector<LoopCall>& calls, Clock::time_point from);
// The failed ones among `calls`, described.
std::vector<std::string> failures(const std::vector<LoopCall>& calls);

// Sends all of it (blocking socket); false on an error or a timeout.
bool send_all(int fd, const char* data, size_t size);

// A server of the `tcp` pod, on threads of the test process with sockets made in the pod.
class TcpServers;

class MeshTest : public ::testing::Test {
 protected:
  MeshTest();
  ~MeshTest() override;
  void SetUp() override;
  void TearDown() override;

  // Pods --------------------------------------------------------------------------------------
  // Adds pod greeter-<n> running `greeter serve --port 50051 --id greeter-<n>`.
  void add_greeter(int n);
  // SIGTERM (as the kubelet), then removes the pod.
  void delete_greeter(int n);
  const h2mesh::lab::Pod& greeter_pod(int n) const;
  std::string greeter_endpoint(int n) const;  // "10.244.0.x:50051"
  // The greeter Service's EndpointSlice (API server) and DNAT (node): `ready` pods as ready,
  // `terminating` ones as Kubernetes shows a pod being deleted (not ready, serving, terminating;
  // kube-proxy no longer sends new connections there).
  void publish_greeters(const std::vector<int>& ready, const std::vector<int>& terminating = {});
  // The `tcp` pod with its servers and its Service (slice and DNAT).
  void add_tcp_pod();
  const h2mesh::lab::Pod& tcp_pod() const { return tcp_pod_; }

  // The sidecar --------------------------------------------------------------------------------
  // `h2mesh iptables install <install_flags>` in the client pod, then `h2mesh run --mesh` as uid
  // 1337 (with `--config` when `config_yaml` is given); waits until /ready says 200.
  void start_sidecar(const std::vector<std::string>& install_flags = {},
                     const std::string& config_yaml = "");
  // `h2mesh iptables install` (the rules exclude uid 1337), then `h2mesh run --mesh` as `uid`,
  // without waiting for anything: for a sidecar expected not to start.
  std::unique_ptr<h2mesh::Subprocess> start_sidecar_as(uid_t uid);
  h2mesh::Subprocess& sidecar() { return *sidecar_; }
  std::string sidecar_log() const;
  // "listener NAME listening on 127.0.0.1:PORT" of the sidecar's config, as PORT.
  uint16_t sidecar_listener_port(const std::string& name);
  // A GET on the sidecar's admin port (from inside the client pod).
  std::pair<int, std::string> admin_get(const std::string& path);
  // A sample of /metrics, e.g. metric("h2mesh_relay_connections_total") or
  // metric("h2mesh_mesh_connections_total{outcome=\"http2\"}"); nullopt when absent.
  std::optional<uint64_t> metric(const std::string& series);
  static std::optional<uint64_t> metric_in(const std::string& metrics, const std::string& series);

  // Clients in the client pod ------------------------------------------------------------------
  // `greeter call --target TARGET -n N` in the client pod.
  CallCounts greeter_call(const std::string& target, int calls);
  // tests/interop/node/client.js (@grpc/grpc-js) with -n N; the test fails (not skips) without
  // node or its node_modules, as the interop test does.
  CallCounts node_call(const std::string& target, int calls);
  // mesh_call_loop against `target`, started now.
  std::unique_ptr<CallLoop> start_call_loop(const std::string& target);
  // A short command in the client pod as root (so its connections are redirected), with `input`
  // on its stdin, to completion; `timeout 60` bounds it.
  h2mesh::CommandOutput run_in_client(const std::vector<std::string>& argv,
                                      const std::string& input = "");
  // A TCP connection from the client pod (as root: redirected by the rules), blocking, with 30 s
  // send and receive timeouts; -1 with errno on failure.
  int dial_from_client(const std::string& ip, uint16_t port);

  h2mesh::lab::Lab& lab() { return *lab_; }
  const h2mesh::lab::Pod& client() const { return client_; }
  h2mesh_test_fakes::FakeKubeApiServer& api() { return *api_; }
  const std::string& dir() const { return dir_; }
  std::string tool(const std::string& name) const;  // an absolute path, "" when missing

  // Every call of `counts` succeeded and each of `pods` answered within one of its share.
  static void expect_spread(const CallCounts& counts, int calls, const std::vector<int>& pods);
  // Fills counts.ok, failed and per_pod from the lines `greeter call` printed in counts.output.
  static void count_greetings(CallCounts& counts);

  // `argv` in `pod`'s network namespace, as `uid` when given; its output goes to files named
  // after `name` in dir().
  std::unique_ptr<h2mesh::Subprocess> spawn_in(const h2mesh::lab::Pod& pod,
                                               const std::vector<std::string>& argv,
                                               const std::string& name,
                                               std::optional<uid_t> uid = std::nullopt);
  // The kubeconfig the sidecar is given: the lab's API server, its token.
  const std::string& kubeconfig() const { return kubeconfig_; }

 private:
  CallCounts run_client(const std::vector<std::string>& argv, const std::string& name);

  std::string dir_;
  std::unique_ptr<h2mesh::lab::Lab> lab_;
  h2mesh::lab::Pod client_;
  std::unique_ptr<h2mesh_test_fakes::FakeKubeApiServer> api_;
  std::unique_ptr<h2mesh::Subprocess> dns_;  // the pod's nameserver (127.0.0.1:53)
  std::string kubeconfig_;
  struct Greeter {
    h2mesh::lab::Pod pod;
    std::unique_ptr<h2mesh::Subprocess> process;
  };
  std::map<int, Greeter> greeters_;
  h2mesh::lab::Pod tcp_pod_;
  std::unique_ptr<TcpServers> tcp_servers_;
  std::vector<std::unique_ptr<h2mesh::Subprocess>> tcp_processes_;
  std::unique_ptr<h2mesh::Subprocess> sidecar_;
  uint16_t admin_port_ = 0;
  int processes_started_ = 0;
};

}  // namespace h2mesh_test::mesh
