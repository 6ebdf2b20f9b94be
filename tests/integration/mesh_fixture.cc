#include "mesh_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

namespace h2mesh_test::mesh {
namespace {

using h2mesh::Subprocess;
using h2mesh::lab::Pod;

constexpr const char* kLabPrefix = "h2e2e";
constexpr auto kClientTimeout = std::chrono::seconds(90);
constexpr auto kReadyTimeout = std::chrono::seconds(30);

auto line_has(const std::string& text) {
  return [text](const std::string& line) { return line.find(text) != std::string::npos; };
}

std::optional<uint16_t> trailing_port(const std::optional<std::string>& line) {
  static const std::regex port_re(R"(:(\d+)\s*$)");
  std::smatch m;
  if (!line || !std::regex_search(*line, m, port_re)) return std::nullopt;
  return static_cast<uint16_t>(std::stoi(m[1]));
}

// Connects from inside `netns`; -1 with errno on failure. 30 s timeouts for the connect and every
// later send and receive: a stuck relay fails the test instead of hanging it.
int connect_in(const std::string& netns, const std::string& ip, uint16_t port) {
  return h2mesh::lab::connect_in(netns, ip, port, 30);
}

// Waits (bounded) until something accepts TCP connections on 127.0.0.1:port in `netns`.
bool wait_listening(const std::string& netns, uint16_t port) {
  return eventually(
      [&] {
        int fd = connect_in(netns, "127.0.0.1", port);
        if (fd < 0) return false;
        close(fd);
        return true;
      },
      std::chrono::seconds(20));
}

}  // namespace

// ---- the tcp pod's servers ------------------------------------------------------------------

class TcpServers {
 public:
  explicit TcpServers(const Pod& pod) {
    for (uint16_t port : {kEchoPort, kGreetingPort, kCountPort}) {
      auto fd = h2mesh::lab::socket_in(pod.netns, AF_INET, SOCK_STREAM);
      EXPECT_TRUE(fd.ok()) << fd.error().message;
      if (!fd) continue;
      int one = 1;
      setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port);
      EXPECT_EQ(bind(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
      EXPECT_EQ(listen(*fd, 64), 0) << strerror(errno);
      listeners_.emplace_back(*fd, port);
    }
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~TcpServers() {
    stop_ = true;
    acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_) shutdown(fd, SHUT_RDWR);  // ends the blocking reads below
    }
    for (auto& t : threads_) t.join();
    for (auto& [fd, port] : listeners_) close(fd);
  }

 private:
  void accept_loop() {
    std::vector<pollfd> polled;
    for (auto& [fd, port] : listeners_) polled.push_back({fd, POLLIN, 0});
    while (!stop_) {
      if (poll(polled.data(), polled.size(), 50) <= 0) continue;
      for (size_t i = 0; i < polled.size(); ++i) {
        if (!(polled[i].revents & POLLIN)) continue;
        int c = accept4(polled[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        timeval tv{60, 0};  // a client that never finishes ends its thread anyway
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        std::lock_guard<std::mutex> lock(mu_);
        open_.insert(c);
        threads_.emplace_back([this, c, port = listeners_[i].second] {
          serve(c, port);
          std::lock_guard<std::mutex> lock(mu_);
          open_.erase(c);
          close(c);
        });
      }
    }
  }

  static void serve(int fd, uint16_t port) {
    std::vector<char> buf(64 << 10);
    if (port == kCountPort) {
      // Answers only after the client's EOF: the reply proves the half-close reached the server
      // and that the other direction still carries data afterwards.
      uint64_t bytes = 0, hash = 0xcbf29ce484222325ULL;  // FNV-1a 64
      for (;;) {
        ssize_t n = recv(fd, buf.data(), buf.size(), 0);
        if (n < 0) return;
        if (n == 0) break;
        bytes += static_cast<uint64_t>(n);
        for (ssize_t i = 0; i < n; ++i) {
          hash ^= static_cast<unsigned char>(buf[i]);
          hash *= 0x100000001b3ULL;
        }
      }
      char reply[96];
      int len =
          snprintf(reply, sizeof(reply), "got %llu bytes fnv %016llx\n",
                   static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(hash));
      send_all(fd, reply, static_cast<size_t>(len));
      shutdown(fd, SHUT_WR);
      return;
    }
    if (port == kGreetingPort) {
      const std::string greeting = "220 tcp pod ready\r\n";  // before the client says anything
      if (!send_all(fd, greeting.data(), greeting.size())) return;
    }
    for (;;) {
      ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      if (n < 0) return;
      if (n == 0) {
        shutdown(fd, SHUT_WR);  // everything was echoed: pass the EOF on
        return;
      }
      if (!send_all(fd, buf.data(), static_cast<size_t>(n))) return;
    }
  }

  std::vector<std::pair<int, uint16_t>> listeners_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::set<int> open_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// ---- CallLoop -------------------------------------------------------------------------------

CallLoop::CallLoop(std::unique_ptr<Subprocess> process, std::string out_path)
    : process_(std::move(process)), out_path_(std::move(out_path)) {}

CallLoop::~CallLoop() = default;

void CallLoop::read_new() {
  std::ifstream f(out_path_, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset_));
  std::string chunk((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  offset_ += chunk.size();
  partial_ += chunk;
  size_t start = 0;
  for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::istringstream line(partial_.substr(start, nl - start));
    std::string first;
    line >> first;
    if (first == "done") {
      std::string ok, failed;
      line >> ok >> failed;
      done_ = true;
      done_failed_ = failed.rfind("failed=", 0) == 0 ? std::stoi(failed.substr(7)) : -1;
      continue;
    }
    long long end_ns = 0;
    std::string kind;
    line >> end_ns >> kind;
    LoopCall call;
    call.start = Clock::time_point(std::chrono::nanoseconds(std::stoll(first)));
    call.end = Clock::time_point(std::chrono::nanoseconds(end_ns));
    call.ok = kind == "ok";
    std::string rest;
    std::getline(line >> std::ws, rest);
    (call.ok ? call.pod : call.error) = rest;
    calls_.push_back(std::move(call));
  }
  partial_.erase(0, start);
}

const std::vector<LoopCall>& CallLoop::calls() {
  read_new();
  return calls_;
}

bool CallLoop::wait_until(const std::function<bool(const std::vector<LoopCall>&)>& pred,
                          std::chrono::milliseconds timeout) {
  return eventually([&] { return pred(calls()); }, timeout);
}

bool CallLoop::wait_more(size_t n, std::chrono::milliseconds timeout) {
  const size_t target = calls().size() + n;
  return wait_until([&](const std::vector<LoopCall>& c) { return c.size() >= target; }, timeout);
}

bool CallLoop::stop() {
  process_->send_signal(SIGTERM);
  (void)process_->wait(std::chrono::seconds(30));
  read_new();
  return done_;
}

std::string CallLoop::describe_failures() {
  std::string out;
  for (const auto& f : failures(calls())) out += "  " + f + "\n";
  return out + process_->read_all(Subprocess::Stream::Stderr);
}

bool send_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

std::map<std::string, int> pods_since(const std::vector<LoopCall>& calls, Clock::time_point from) {
  std::map<std::string, int> out;
  for (const auto& c : calls)
    if (c.ok && c.start >= from) ++out[c.pod];
  return out;
}

std::vector<std::string> failures(const std::vector<LoopCall>& calls) {
  std::vector<std::string> out;
  for (const auto& c : calls)
    if (!c.ok) out.push_back(c.error);
  return out;
}

// ---- the fixture ----------------------------------------------------------------------------

MeshTest::MeshTest() = default;
MeshTest::~MeshTest() = default;

void MeshTest::SetUp() {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root: builds network namespaces, veths and iptables rules, and runs "
                    "the sidecar as uid 1337";
  for (const char* t : {"setpriv", "iptables-save", "openssl"})
    ASSERT_NE(tool(t), "") << "`" << t << "` not found (scripts/setup.sh installs it)";
  dir_ = make_temp_dir();
  chmod(dir_.c_str(), 0755);  // the sidecar (uid 1337) reads its kubeconfig from here
  auto lab = h2mesh::lab::Lab::create({dir_, kLabPrefix});
  ASSERT_TRUE(lab.ok()) << lab.error().message;
  lab_ = std::move(*lab);
  for (int n = 1; n <= 4; ++n) ASSERT_NO_FATAL_FAILURE(add_greeter(n));

  auto client = lab_->add_pod("client");
  ASSERT_TRUE(client.ok()) << client.error().message;
  client_ = *client;
  // What the cluster's DNS answers for the Services, as a pod's resolver would find it.
  ASSERT_TRUE(lab_->set_hosts("client", {{kGreeterIp, std::string(kGreeterHost) +
                                                          " greeter.grpcdemo.svc greeter.grpcdemo"},
                                         {kTcpIp, std::string(kTcpHost) + " tcp.grpcdemo.svc"}})
                  .ok());

  // And the cluster's DNS, which a resolver asks for what the hosts file lacks (gRPC's c-ares
  // asks for AAAA records too): the Services' A records, no AAAA, NXDOMAIN for anything else,
  // at once. Without it each lookup would wait for its DNS timeout.
  const std::string records = dir_ + "/dns.json";
  std::ofstream(records) << "{\"" << kGreeterHost << "\": {\"A\": [\"" << kGreeterIp << "\"]}, \""
                         << kTcpHost << "\": {\"A\": [\"" << kTcpIp << "\"]}}\n";
  dns_ =
      spawn_in(client_,
               {"/usr/bin/python3", std::string(H2MESH_SOURCE_DIR) + "/tests/fakes/dns_server.py",
                "--records", records, "--port", "53", "--lifetime", "900"},
               "dns");
  ASSERT_TRUE(dns_);
  ASSERT_TRUE(
      dns_->wait_for_line(Subprocess::Stream::Stdout, line_has("dns listening on"), kStartTimeout))
      << dns_->read_all(Subprocess::Stream::Stderr);

  // The API server inside the client pod, on its loopback: what the sidecar reaches there is
  // never redirected, and the test reaches its control port from a thread in the pod.
  h2mesh_test_fakes::FakeKubeApiServer::Placement placement;
  placement.wrap = [this](const std::vector<std::string>& argv) {
    return lab_->exec_argv(client_, argv);
  };
  placement.enter = [netns = client_.netns](const std::function<void()>& fn) {
    auto entered = h2mesh::lab::in_netns(netns, fn);
    EXPECT_TRUE(entered.ok()) << entered.error().message;
  };
  api_ = std::make_unique<h2mesh_test_fakes::FakeKubeApiServer>(
      dir_ + "/api", std::vector<std::string>{"--http"}, std::move(placement));
  ASSERT_NE(api_->port(), 0) << "the fake API server did not start";
  api_->put_service(kNamespace, "greeter",
                    R"({"clusterIP":")" + std::string(kGreeterIp) +
                        R"(","ports":[{"name":"grpc","port":50051,"targetPort":50051}]})");
  ASSERT_NO_FATAL_FAILURE(publish_greeters({1, 2, 3, 4}));

  kubeconfig_ = dir_ + "/kubeconfig";
  std::ofstream(kubeconfig_) << "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n"
                             << "    server: " << api_->url() << "\n"
                             << "users:\n- name: h2mesh\n  user:\n    token: test-token\n"
                             << "contexts:\n- name: lab\n  context: {cluster: lab, user: h2mesh}\n"
                             << "current-context: lab\n";
  chmod(kubeconfig_.c_str(), 0644);
}

void MeshTest::TearDown() {
  if (sidecar_) {
    // Whatever the test did, the sidecar is still there (no crash) and stops cleanly.
    EXPECT_TRUE(sidecar_->running()) << "the sidecar exited:\n" << sidecar_log();
    sidecar_->send_signal(SIGTERM);
    auto code = sidecar_->wait(std::chrono::seconds(40));  // drain_timeout 30 s at most
    EXPECT_EQ(code, std::optional<int>(0)) << "the sidecar did not exit cleanly on SIGTERM";
    sidecar_.reset();
  }
  tcp_processes_.clear();
  tcp_servers_.reset();
  greeters_.clear();
  api_.reset();
  dns_.reset();
  lab_.reset();  // the namespaces, their rules and whatever still runs in them
  if (dir_.empty()) return;
  if (HasFailure()) {
    printf("logs in %s\n", dir_.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string MeshTest::tool(const std::string& name) const { return h2mesh::lab::find_tool(name); }

std::unique_ptr<Subprocess> MeshTest::spawn_in(const Pod& pod, const std::vector<std::string>& argv,
                                               const std::string& name, std::optional<uid_t> uid) {
  auto p = Subprocess::spawn(lab_->exec_argv(pod, argv, uid), dir_, name);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return p.ok() ? std::move(*p) : nullptr;
}

void MeshTest::add_greeter(int n) {
  const std::string name = "greeter-" + std::to_string(n);
  auto pod = lab_->add_pod(name);
  ASSERT_TRUE(pod.ok()) << pod.error().message;
  auto p = spawn_in(*pod,
                    {bin_dir() + "/greeter", "serve", "--address", "0.0.0.0", "--port",
                     std::to_string(kGrpcPort), "--id", name},
                    name);
  ASSERT_TRUE(p);
  ASSERT_TRUE(
      p->wait_for_line(Subprocess::Stream::Stdout, line_has(" listening on "), kStartTimeout))
      << name << " did not start: " << p->read_all(Subprocess::Stream::Stderr);
  greeters_[n] = Greeter{*pod, std::move(p)};
}

void MeshTest::delete_greeter(int n) {
  auto it = greeters_.find(n);
  ASSERT_NE(it, greeters_.end());
  it->second.process->send_signal(SIGTERM);
  EXPECT_EQ(it->second.process->wait(std::chrono::seconds(20)), std::optional<int>(0));
  ASSERT_TRUE(lab_->remove_pod(it->second.pod.name).ok());
  greeters_.erase(it);
}

const Pod& MeshTest::greeter_pod(int n) const { return greeters_.at(n).pod; }

std::string MeshTest::greeter_endpoint(int n) const {
  return greeter_pod(n).ip + ":" + std::to_string(kGrpcPort);
}

void MeshTest::publish_greeters(const std::vector<int>& ready,
                                const std::vector<int>& terminating) {
  std::string endpoints;
  h2mesh::lab::ServiceRule rule{kNamespace, "greeter", "grpc", kGreeterIp,
                                kGrpcPort,  kGrpcPort, {}};
  auto add = [&](int n, bool is_ready) {
    const Pod& pod = greeter_pod(n);
    const char* r = is_ready ? "true" : "false";
    const char* t = is_ready ? "false" : "true";
    endpoints += std::string(endpoints.empty() ? "" : ",") + R"({"addresses":[")" + pod.ip +
                 R"("],"conditions":{"ready":)" + r + R"(,"serving":true,"terminating":)" + t +
                 R"(},"targetRef":{"kind":"Pod","namespace":"grpcdemo","name":")" + pod.name +
                 R"("}})";
    if (is_ready) rule.endpoints.push_back(pod.ip);
  };
  for (int n : ready) add(n, true);
  for (int n : terminating) add(n, false);
  api_->put_slice("grpcdemo/greeter-e2e",
                  R"({"service":"greeter","addressType":"IPv4","endpoints":[)" + endpoints +
                      R"(],"ports":[{"name":"grpc","protocol":"TCP","port":50051}]})");
  auto applied = lab_->set_service(rule);
  ASSERT_TRUE(applied.ok()) << applied.error().message;
}

void MeshTest::add_tcp_pod() {
  auto pod = lab_->add_pod("tcp");
  ASSERT_TRUE(pod.ok()) << pod.error().message;
  tcp_pod_ = *pod;
  tcp_servers_ = std::make_unique<TcpServers>(tcp_pod_);

  const std::string www = dir_ + "/www";
  std::filesystem::create_directories(www);
  std::ofstream(www + "/hello.txt") << "hello over HTTP/1.1 from the tcp pod\n";
  tcp_processes_.push_back(
      spawn_in(tcp_pod_,
               {"/usr/bin/python3", "-m", "http.server", std::to_string(kHttpPodPort), "--bind",
                "0.0.0.0", "--directory", www},
               "http-server"));
  // A certificate for the Service's name; the client verifies it through the sidecar.
  auto cert = h2mesh::run_command(
      {tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", dir_ + "/tls.key", "-out", dir_ + "/tls.crt", "-days", "2", "-subj",
       std::string("/CN=") + kTcpHost, "-addext", std::string("subjectAltName=DNS:") + kTcpHost});
  ASSERT_TRUE(cert.ok() && cert->exit_code == 0) << (cert.ok() ? cert->err : "");
  tcp_processes_.push_back(
      spawn_in(tcp_pod_,
               {tool("openssl"), "s_server", "-accept", std::to_string(kTlsPodPort), "-cert",
                dir_ + "/tls.crt", "-key", dir_ + "/tls.key", "-www"},
               "tls-server"));
  for (const auto& p : tcp_processes_) ASSERT_TRUE(p);
  ASSERT_TRUE(wait_listening(tcp_pod_.netns, kHttpPodPort)) << "python3 -m http.server";
  ASSERT_TRUE(wait_listening(tcp_pod_.netns, kTlsPodPort)) << "openssl s_server";

  struct Port {
    const char* name;
    uint16_t port, target;
  };
  const Port ports[] = {
      {"echo", kEchoPort, kEchoPort},           {"greeting", kGreetingPort, kGreetingPort},
      {"count", kCountPort, kCountPort},        {"redis", kOpaquePort, kEchoPort},
      {"http", kHttpServicePort, kHttpPodPort}, {"tls", kTlsServicePort, kTlsPodPort}};
  std::string service_ports, slice_ports;
  for (const Port& p : ports) {
    const std::string sep = service_ports.empty() ? "" : ",";
    service_ports += sep + R"({"name":")" + p.name + R"(","port":)" + std::to_string(p.port) +
                     R"(,"targetPort":)" + std::to_string(p.target) + "}";
    slice_ports += sep + R"({"name":")" + p.name + R"(","protocol":"TCP","port":)" +
                   std::to_string(p.target) + "}";
    auto applied =
        lab_->set_service({kNamespace, "tcp", p.name, kTcpIp, p.port, p.target, {tcp_pod_.ip}});
    ASSERT_TRUE(applied.ok()) << applied.error().message;
  }
  api_->put_service(
      kNamespace, "tcp",
      R"({"clusterIP":")" + std::string(kTcpIp) + R"(","ports":[)" + service_ports + "]}");
  api_->put_slice("grpcdemo/tcp-e2e",
                  R"({"service":"tcp","addressType":"IPv4","endpoints":[{"addresses":[")" +
                      tcp_pod_.ip +
                      R"("],"conditions":{"ready":true,"serving":true,"terminating":false}}],)"
                      R"("ports":[)" +
                      slice_ports + "]}");
}

void MeshTest::start_sidecar(const std::vector<std::string>& install_flags,
                             const std::string& config_yaml) {
  std::vector<std::string> install = {bin_dir() + "/h2mesh", "iptables", "install"};
  install.insert(install.end(), install_flags.begin(), install_flags.end());
  auto installed = lab_->run(&client_, install);
  ASSERT_TRUE(installed.ok()) << installed.error().message;

  std::vector<std::string> argv = {bin_dir() + "/h2mesh", "run",     "--mesh",     "--kubeconfig",
                                   kubeconfig_,           "--admin", "127.0.0.1:0"};
  if (!config_yaml.empty()) {
    const std::string path = dir_ + "/sidecar.yaml";
    std::ofstream(path) << config_yaml;
    chmod(path.c_str(), 0644);
    argv.insert(argv.end(), {"--config", path});
  }
  sidecar_ = spawn_in(client_, argv, "sidecar", kSidecarUid);
  ASSERT_TRUE(sidecar_);
  auto admin = trailing_port(sidecar_->wait_for_line(
      Subprocess::Stream::Stderr, line_has("admin listening on"), kStartTimeout));
  ASSERT_TRUE(admin.has_value()) << "the sidecar did not start:\n" << sidecar_log();
  admin_port_ = *admin;
  ASSERT_TRUE(eventually([&] { return admin_get("/ready").first == 200; }, kReadyTimeout))
      << "the sidecar's /ready did not say 200: " << admin_get("/ready").second << "\n"
      << sidecar_log();
}

std::unique_ptr<h2mesh::Subprocess> MeshTest::start_sidecar_as(uid_t uid) {
  auto installed = lab_->run(&client_, {bin_dir() + "/h2mesh", "iptables", "install"});
  EXPECT_TRUE(installed.ok()) << installed.error().message;
  if (!installed.ok()) return nullptr;
  return spawn_in(client_,
                  {bin_dir() + "/h2mesh", "run", "--mesh", "--kubeconfig", kubeconfig_, "--admin",
                   "127.0.0.1:0"},
                  "sidecar-uid-" + std::to_string(uid), uid);
}

std::string MeshTest::sidecar_log() const {
  return sidecar_ ? sidecar_->read_all(Subprocess::Stream::Stderr) : "";
}

uint16_t MeshTest::sidecar_listener_port(const std::string& name) {
  auto port = trailing_port(sidecar_->wait_for_line(
      Subprocess::Stream::Stderr, line_has("listener " + name + " listening on"), kStartTimeout));
  EXPECT_TRUE(port.has_value()) << sidecar_log();
  return port.value_or(0);
}

std::pair<int, std::string> MeshTest::admin_get(const std::string& path) {
  auto reply = h2mesh::lab::http_get_in(client_.netns, "127.0.0.1", admin_port_, path, 10000);
  if (!reply) return {0, reply.error().message};
  return {reply->status, reply->body};
}

std::optional<uint64_t> MeshTest::metric_in(const std::string& metrics, const std::string& series) {
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);)
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ')
      return std::stoull(line.substr(series.size() + 1));
  return std::nullopt;
}

std::optional<uint64_t> MeshTest::metric(const std::string& series) {
  auto [status, body] = admin_get("/metrics");
  EXPECT_EQ(status, 200) << body;
  return metric_in(body, series);
}

h2mesh::CommandOutput MeshTest::run_in_client(const std::vector<std::string>& argv,
                                              const std::string& input) {
  // `timeout` bounds it: run_command itself waits as long as the command runs.
  std::vector<std::string> bounded = {tool("timeout"), "60"};
  bounded.insert(bounded.end(), argv.begin(), argv.end());
  auto r = h2mesh::run_command(lab_->exec_argv(client_, bounded), input);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : h2mesh::CommandOutput{};
}

int MeshTest::dial_from_client(const std::string& ip, uint16_t port) {
  return connect_in(client_.netns, ip, port);
}

CallCounts MeshTest::run_client(const std::vector<std::string>& argv, const std::string& name) {
  CallCounts counts;
  auto p = spawn_in(client_, argv, name + "-" + std::to_string(++processes_started_));
  if (!p) return counts;
  counts.exit_code = p->wait(kClientTimeout);
  counts.output = p->read_all(Subprocess::Stream::Stdout) + p->read_all(Subprocess::Stream::Stderr);
  return counts;
}

CallCounts MeshTest::greeter_call(const std::string& target, int calls) {
  CallCounts counts = run_client({bin_dir() + "/greeter", "call", "--target", target, "-n",
                                  std::to_string(calls), "--deadline-ms", "10000"},
                                 "greeter-call");
  count_greetings(counts);
  return counts;
}

void MeshTest::count_greetings(CallCounts& counts) {
  std::istringstream lines(counts.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(" - error: ") != std::string::npos) {
      ++counts.failed;
    } else if (size_t at = line.find(" - Greeting: "); at != std::string::npos) {
      ++counts.ok;
      ++counts.per_pod[backend_of(line.substr(at + 13))];
    }
  }
}

CallCounts MeshTest::node_call(const std::string& target, int calls) {
  const std::string node_dir = std::string(H2MESH_SOURCE_DIR) + "/tests/interop/node";
  EXPECT_TRUE(std::filesystem::is_directory(node_dir + "/node_modules/@grpc/grpc-js"))
      << node_dir << "/node_modules is missing: run `npm ci --prefix tests/interop/node` first";
  EXPECT_NE(tool("node"), "") << "`node` (>= 20) is not on PATH";
  if (tool("node").empty()) return {};
  CallCounts counts = run_client(
      {tool("node"), node_dir + "/client.js", "--target", target, "-n", std::to_string(calls)},
      "node-client");
  InteropReport report = parse_interop_report(counts.output);
  counts.per_pod = report.backends;
  counts.ok = report.ok.value_or(0);
  counts.failed = report.failed.value_or(-1);
  EXPECT_EQ(report.stream_ok, std::optional(true)) << counts.output;
  EXPECT_EQ(report.bidi_ok, std::optional(true)) << counts.output;
  return counts;
}

std::unique_ptr<CallLoop> MeshTest::start_call_loop(const std::string& target) {
  const std::string name = "call-loop-" + std::to_string(++processes_started_);
  // A short pause between calls: the 2 cores are shared by the client, the sidecar, the pods and
  // the API server; a few hundred calls a second still put every pod in rotation in milliseconds.
  auto p = spawn_in(
      client_, {H2MESH_CALL_LOOP, "--target", target, "--deadline-ms", "10000", "--pause-ms", "2"},
      name);
  if (!p) return nullptr;
  return std::make_unique<CallLoop>(std::move(p), dir_ + "/" + name + ".out");
}

void MeshTest::expect_spread(const CallCounts& counts, int calls, const std::vector<int>& pods) {
  EXPECT_EQ(counts.exit_code, std::optional<int>(0)) << counts.output;
  EXPECT_EQ(counts.failed, 0) << counts.output;
  EXPECT_EQ(counts.ok, calls) << counts.output;
  const int share = calls / static_cast<int>(pods.size());
  std::set<std::string> expected;
  for (int n : pods) expected.insert("greeter-" + std::to_string(n));
  for (const auto& [pod, n] : counts.per_pod) {
    EXPECT_TRUE(expected.count(pod)) << pod << " answered " << n << " calls\n" << counts.output;
    EXPECT_GE(n, share - 1) << pod << "\n" << counts.output;
    EXPECT_LE(n, share + 1) << pod << "\n" << counts.output;
  }
  EXPECT_EQ(counts.per_pod.size(), pods.size()) << counts.output;
}

}  // namespace h2mesh_test::mesh
