// The network lab (src/lab) as root: what it builds works like a node with pods, and what it
// builds goes away. Each test makes its own lab (namespaces named after this process), so tests
// may run in parallel with each other and with other labs.

#include "lab/lab.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "common/subprocess.h"
#include "harness.h"
#include "lab/kube_api_server.h"

namespace {

using h2mesh::Subprocess;
using h2mesh::lab::Lab;
using h2mesh::lab::Pod;

constexpr const char* kPrefix = "h2labtest";

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// What a lab must not touch: the links and the iptables rules of the namespace it runs from.
std::string host_state() {
  auto run = [](const std::vector<std::string>& argv) {
    auto r = h2mesh::run_command(argv);
    return r ? r->out : std::string("failed: ") + r.error().message;
  };
  std::string out = run({h2mesh::lab::find_tool("ip"), "-o", "link", "show"});
  // Rules only: counters and the header's timestamps change by themselves.
  std::string rules = run({h2mesh::lab::find_tool("iptables-save")});
  std::istringstream in(rules);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("-A", 0) == 0 || line.rfind(":", 0) == 0 || line.rfind("*", 0) == 0)
      out += line.substr(0, line.find(" [")) + "\n";
  return out;
}

// A listening TCP socket in a pod's namespace on 0.0.0.0:port (0: any); returns fd and port.
std::pair<int, uint16_t> listen_in(const Pod& pod, uint16_t port = 0) {
  auto fd = h2mesh::lab::socket_in(pod.netns, AF_INET, SOCK_STREAM);
  EXPECT_TRUE(fd.ok());
  int one = 1;
  setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  EXPECT_EQ(bind(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  EXPECT_EQ(listen(*fd, 64), 0);
  socklen_t len = sizeof(addr);
  getsockname(*fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return {*fd, ntohs(addr.sin_port)};
}

// A TCP connection from a pod to ip:port; -1 (errno set) when it fails. Bounded by 5 s.
int dial_from(const Pod& pod, const std::string& ip, uint16_t port) {
  return h2mesh::lab::connect_in(pod.netns, ip, port, 5);
}

std::string read_some(int fd) {
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// Answers every connection with `name` and closes it, until destroyed.
class NameServer {
 public:
  NameServer(const Pod& pod, uint16_t port) : name_(pod.name) {
    std::tie(fd_, port_) = listen_in(pod, port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        (void)send(c, name_.data(), name_.size(), MSG_NOSIGNAL);
        close(c);
      }
    });
  }
  ~NameServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }

 private:
  std::string name_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class LabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: creates network namespaces, veths and rules";
    dir_ = h2mesh_test::make_temp_dir();
    auto lab = Lab::create({dir_, kPrefix});
    ASSERT_TRUE(lab.ok()) << lab.error().message;
    lab_ = std::move(*lab);
  }
  Pod add(const std::string& name) {
    auto p = lab_->add_pod(name);
    EXPECT_TRUE(p.ok()) << p.error().message;
    return p.ok() ? *p : Pod{};
  }
  std::string dir_;
  std::unique_ptr<Lab> lab_;
};

TEST_F(LabTest, CreateAndDestroyLeaveNothingBehind) {
  lab_.reset();
  const std::string before = host_state();
  std::string a_netns;
  {
    auto lab = Lab::create({dir_, kPrefix});
    ASSERT_TRUE(lab.ok()) << lab.error().message;
    ASSERT_TRUE((*lab)->add_pod("a").ok());
    ASSERT_TRUE((*lab)->add_pod("b").ok());
    ASSERT_TRUE((*lab)
                    ->set_service({"ns",
                                   "svc",
                                   "p",
                                   "10.96.0.20",
                                   80,
                                   8080,
                                   {(*lab)->pod("a")->ip, (*lab)->pod("b")->ip}})
                    .ok());
    const std::string lab_id = (*lab)->node_netns().substr(0, (*lab)->node_netns().size() - 4);
    EXPECT_EQ(h2mesh::lab::netns_with_prefix(lab_id).size(), 3u);
    EXPECT_TRUE(exists("/etc/netns/" + (*lab)->pod("a")->netns + "/hosts"));
    // Each namespace's loopback is up (the lab checks it, here seen from the outside).
    auto lo = (*lab)->run((*lab)->pod("b"), {"ip", "-o", "link", "show", "lo"});
    ASSERT_TRUE(lo.ok()) << lo.error().message;
    EXPECT_NE(lo->find(",UP"), std::string::npos) << *lo;
    // Nothing of it in the namespace the lab runs from: the veths live in the node namespace.
    EXPECT_EQ(host_state(), before);
    a_netns = (*lab)->pod("a")->netns;
  }
  EXPECT_TRUE(h2mesh::lab::netns_with_prefix(std::string(kPrefix) + "-" + std::to_string(getpid()))
                  .empty());
  EXPECT_FALSE(exists("/etc/netns/" + a_netns));
  EXPECT_EQ(host_state(), before);
}

TEST_F(LabTest, PodReachesAnotherPodWhoSeesItsAddress) {
  Pod a = add("a"), b = add("b");
  auto [listener, port] = listen_in(a);
  int client = dial_from(b, a.ip, port);
  ASSERT_GE(client, 0) << strerror(errno);
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  int server = accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
  ASSERT_GE(server, 0);
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
  EXPECT_EQ(std::string(ip), b.ip);  // routed, not masqueraded
  ASSERT_EQ(send(client, "ping", 4, 0), 4);
  EXPECT_EQ(read_some(server), "ping");
  ASSERT_EQ(send(server, "pong", 4, 0), 4);
  EXPECT_EQ(read_some(client), "pong");
  close(client);
  close(server);
  close(listener);
}

// The pods' gateway keeps its MAC however pods come and go: a bridge left to pick its MAC from
// its ports changes it when the port it took it from leaves, and the pods' neighbour entries
// then point nowhere until they expire (the remaining pods lose each other for half a minute).
TEST_F(LabTest, PodsLeavingKeepTheGatewaysMacAndTheOthersConnected) {
  auto mac = [&] {
    auto link = lab_->run(nullptr, {"ip", "-o", "link", "show", "br0"});
    EXPECT_TRUE(link.ok()) << link.error().message;
    std::string text = link.ok() ? *link : "";
    size_t at = text.find("link/ether ");
    return at == std::string::npos ? text : text.substr(at + 11, 17);
  };
  const std::string at_start = mac();
  Pod a = add("a"), b = add("b");
  std::vector<Pod> leaving;
  for (const char* name : {"c", "d", "e", "f"}) leaving.push_back(add(name));
  NameServer server(a, 8080);
  // b learns the gateway's MAC now, while every pod is there.
  int fd = dial_from(b, a.ip, 8080);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(read_some(fd), "a");
  close(fd);
  EXPECT_EQ(mac(), at_start);
  for (const Pod& p : leaving) ASSERT_TRUE(lab_->remove_pod(p.name).ok());
  EXPECT_EQ(mac(), at_start);
  fd = dial_from(b, a.ip, 8080);  // at once, with what b already knows of its gateway
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(read_some(fd), "a");
  close(fd);
}

TEST_F(LabTest, ClusterIpIsDnatedToOneOfTheServicesPodsPerConnection) {
  Pod p1 = add("p1"), p2 = add("p2"), client = add("client");
  NameServer s1(p1, 8080), s2(p2, 8080);
  h2mesh::lab::ServiceRule rule{"ns", "names", "tcp", "10.96.0.20", 80, 8080, {p1.ip, p2.ip}};
  ASSERT_TRUE(lab_->set_service(rule).ok());
  std::set<std::string> seen;
  // Each of 2 pods with 1/2 per connection: 32 connections all on one pod would be a 2^-31 event.
  for (int i = 0; i < 32; ++i) {
    int fd = dial_from(client, "10.96.0.20", 80);
    ASSERT_GE(fd, 0) << "connection " << i << ": " << strerror(errno);
    std::string name = read_some(fd);
    close(fd);
    ASSERT_TRUE(name == "p1" || name == "p2") << "'" << name << "'";
    seen.insert(name);
  }
  EXPECT_EQ(seen.size(), 2u);

  rule.endpoints = {p2.ip};  // p1 leaves: new connections go to p2 only
  ASSERT_TRUE(lab_->set_service(rule).ok());
  for (int i = 0; i < 8; ++i) {
    int fd = dial_from(client, "10.96.0.20", 80);
    ASSERT_GE(fd, 0) << strerror(errno);
    EXPECT_EQ(read_some(fd), "p2");
    close(fd);
  }

  rule.endpoints.clear();  // no endpoint: refused at once, not left hanging
  ASSERT_TRUE(lab_->set_service(rule).ok());
  EXPECT_EQ(dial_from(client, "10.96.0.20", 80), -1);
  EXPECT_TRUE(errno == ENETUNREACH || errno == EHOSTUNREACH || errno == ECONNREFUSED)
      << strerror(errno);
}

TEST_F(LabTest, PodReachesItselfThroughItsService) {
  Pod p1 = add("p1");
  NameServer s1(p1, 8080);
  ASSERT_TRUE(lab_->set_service({"ns", "names", "tcp", "10.96.0.20", 80, 8080, {p1.ip}}).ok());
  int fd = dial_from(p1, "10.96.0.20", 80);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(read_some(fd), "p1");
  close(fd);
}

TEST_F(LabTest, ProcessesRunInThePodAsTheGivenUidAndResolveItsHosts) {
  Pod p = add("client");
  ASSERT_TRUE(
      lab_->set_hosts("client", {{"10.96.0.10", "greeter.grpcdemo.svc.cluster.local"}}).ok());
  auto run = [&](const std::vector<std::string>& argv, std::optional<uid_t> uid, const char* log) {
    auto proc = Subprocess::spawn(lab_->exec_argv(p, argv, uid), dir_, log);
    EXPECT_TRUE(proc.ok());
    EXPECT_EQ((*proc)->wait(std::chrono::seconds(10)), 0);
    return (*proc)->read_all(Subprocess::Stream::Stdout);
  };
  EXPECT_EQ(run({h2mesh::lab::find_tool("id"), "-u"}, 1337, "id-u"), "1337\n");
  EXPECT_EQ(run({h2mesh::lab::find_tool("id"), "-G"}, 1337, "id-g"), "1337\n");  // no other group
  const std::string hosts =
      run({h2mesh::lab::find_tool("getent"), "hosts", "greeter.grpcdemo.svc.cluster.local"},
          std::nullopt, "getent");
  EXPECT_EQ(hosts.substr(0, hosts.find(' ')), "10.96.0.10") << hosts;
  // The pod's own address, seen from inside.
  const std::string addr =
      run({h2mesh::lab::find_tool("ip"), "-o", "-4", "addr", "show", "eth0"}, std::nullopt, "addr");
  EXPECT_NE(addr.find(" " + p.ip + "/32 "), std::string::npos) << addr;
}

TEST_F(LabTest, LeftoversOfDeadRunsAreRemovedAndLiveOnesKept) {
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  waitpid(dead, nullptr, 0);
  const std::string stale = std::string(kPrefix) + "-" + std::to_string(dead) + "-0-node";
  const std::string live = std::string(kPrefix) + "-" + std::to_string(getpid()) + "-99-keep";
  for (const auto& n : {stale, live}) {
    auto r = h2mesh::run_command({h2mesh::lab::find_tool("ip"), "netns", "add", n});
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << n;
  }
  std::filesystem::create_directories("/etc/netns/" + stale);
  EXPECT_EQ(h2mesh::lab::remove_stale(kPrefix), 1);
  EXPECT_FALSE(exists("/run/netns/" + stale));
  EXPECT_FALSE(exists("/etc/netns/" + stale));
  EXPECT_TRUE(exists("/run/netns/" + live));  // this process is alive: its namespaces stay
  (void)h2mesh::run_command({h2mesh::lab::find_tool("ip"), "netns", "delete", live});
}

TEST_F(LabTest, ApiServerOnTheNodeAnswersAPod) {
  Pod p = add("client");
  auto fd = h2mesh::lab::socket_in(lab_->node_netns(), AF_INET, SOCK_STREAM);
  ASSERT_TRUE(fd.ok());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, lab_->node_ip().c_str(), &addr.sin_addr);
  ASSERT_EQ(bind(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(*fd, 16), 0);
  h2mesh::lab::ObjectStore store;
  store.put_service({"grpcdemo", "greeter", "10.96.0.10", {{"grpc", 50051, 50051, ""}}});
  h2mesh::lab::KubeApiServer server(store, *fd, {"tok"});
  auto reply = h2mesh::lab::http_get_in(p.netns, lab_->node_ip(), server.port(),
                                        "/api/v1/namespaces/grpcdemo/services", 5000);
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->status, 401);  // no token: the API server wants one
  EXPECT_NE(reply->body.find("\"kind\":\"Status\""), std::string::npos) << reply->body;
  reply = h2mesh::lab::http_get_in(p.netns, lab_->node_ip(), server.port(),
                                   "/api/v1/namespaces/grpcdemo/services", 5000, "tok");
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->status, 200);
  EXPECT_NE(reply->body.find("\"clusterIP\":\"10.96.0.10\""), std::string::npos) << reply->body;
}

}  // namespace
