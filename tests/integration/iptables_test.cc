// `h2mesh iptables` against the real iptables binaries and the kernel, as root, each test in
// network namespaces it creates and deletes: what install leaves in the nat table (both
// backends, both families), that installing twice is installing once, that uninstall gives back
// the table it found, what happens without CAP_NET_ADMIN or without the binaries, the rollback
// of IPv4 when IPv6 fails, and where connections actually go once the rules are in.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"

namespace h2mesh {
namespace {

// <linux/netfilter_ipv6/ip6_tables.h> cannot be included beside the libc headers.
constexpr int kIp6tSoOriginalDst = 80;

const std::string kH2mesh = std::string(H2MESH_BIN_DIR) + "/h2mesh";

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs a tool by name ($PATH, then /usr/sbin, where iptables and ip live) or by path.
Outcome run(std::vector<std::string> argv, const std::string& input = "") {
  if (argv[0].find('/') == std::string::npos) {
    std::string path = find_executable(argv[0]);
    argv[0] = path.empty() ? "/usr/sbin/" + argv[0] : path;
  }
  Result<CommandOutput> r = run_command(argv, input);
  EXPECT_TRUE(r.ok()) << argv[0] << ": " << (r.ok() ? "" : r.error().message);
  if (!r.ok()) return {};
  return {r->exit_code, r->out, r->err};
}

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// A network namespace of this test, deleted (with everything in it) when this goes away.
class Netns {
 public:
  explicit Netns(const std::string& role) {
    static int counter = 0;
    name_ = "h2mesh-ipt-" + std::to_string(getpid()) + "-" + std::to_string(++counter) + "-" + role;
    Outcome r = run({"ip", "netns", "add", name_});
    ok_ = r.code == 0;
    EXPECT_TRUE(ok_) << "ip netns add " << name_ << ": " << r.err;
  }
  ~Netns() {
    if (ok_) run({"ip", "netns", "del", name_});
  }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

  // `argv` inside the namespace (ip netns exec).
  Outcome exec(const std::vector<std::string>& argv, const std::string& input = "") const {
    std::vector<std::string> full = {"ip", "netns", "exec", name_};
    full.insert(full.end(), argv.begin(), argv.end());
    return run(full, input);
  }
  // Like exec, and the command must succeed.
  std::string must(const std::vector<std::string>& argv, const std::string& input = "") const {
    Outcome r = exec(argv, input);
    EXPECT_EQ(r.code, 0) << joined(argv) << "\n" << r.out << r.err;
    return r.out;
  }
  Outcome h2mesh(std::vector<std::string> args) const {
    args.insert(args.begin(), kH2mesh);
    return exec(args);
  }
  // `<tool> -t nat` without the comment lines (they carry the time).
  std::string nat(const std::string& save_tool) const {
    std::string text;
    std::istringstream lines(must({save_tool, "-t", "nat"}));
    for (std::string line; std::getline(lines, line);)
      if (!line.starts_with("#")) text += line + "\n";
    return text;
  }

 private:
  std::string name_;
  bool ok_ = false;
};

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// Command-line mistakes need no root and change nothing: exit code 2 and a message naming them.
TEST(IptablesCommandLine, MistakesExitWith2AndHelpWith0) {
  Outcome r =
      run({kH2mesh, "iptables", "install", "--skip-outbound-cidrs", "10.0.0.0/8,10.1.0.0/40"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "h2mesh iptables: --skip-outbound-cidrs: invalid CIDR '10.1.0.0/40': the prefix length "
            "must be 0..32\nRun 'h2mesh iptables --help' for usage.\n");
  r = run({kH2mesh, "iptables", "instal"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "unknown action 'instal' (did you mean install?)")) << r.err;
  r = run({kH2mesh, "iptables", "install", "--outbound-port", "99999"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "--outbound-port: invalid port '99999'")) << r.err;
  r = run({kH2mesh, "iptables"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "an action is required")) << r.err;

  r = run({kH2mesh, "iptables", "install", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.out.starts_with("usage: h2mesh iptables install|uninstall|show")) << r.out;
  EXPECT_TRUE(has(r.out, "--skip-outbound-cidrs")) << r.out;
  r = run({kH2mesh, "--help"});
  EXPECT_TRUE(has(r.out, "h2mesh iptables install|uninstall|show")) << r.out;
}

class IptablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0)
      GTEST_SKIP() << "needs root: creates network namespaces and changes their nat tables";
    pod_ = std::make_unique<Netns>("pod");
    ASSERT_TRUE(pod_->ok());
  }
  std::unique_ptr<Netns> pod_;
};

class IptablesBackendTest : public IptablesTest, public ::testing::WithParamInterface<std::string> {
 protected:
  std::string v4_save() const { return "iptables-" + GetParam() + "-save"; }
  std::string v6_save() const { return "ip6tables-" + GetParam() + "-save"; }
};

TEST_P(IptablesBackendTest, InstallTwiceIsOnceAndUninstallGivesBackTheTable) {
  const std::string b = GetParam();
  const std::string other = b == "nft" ? "legacy" : "nft";
  // Somebody else's rules, which every step must leave alone.
  for (const std::string& tool : {"iptables-" + b, "ip6tables-" + b}) {
    pod_->must({tool, "-t", "nat", "-N", "FOREIGN"});
    pod_->must({tool, "-t", "nat", "-A", "FOREIGN", "-p", "udp", "-j", "RETURN"});
    pod_->must({tool, "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "53", "-j", "FOREIGN"});
  }
  const std::string before4 = pod_->nat(v4_save()), before6 = pod_->nat(v6_save());

  Outcome r = pod_->h2mesh({"iptables", "install", "--backend", b, "--ipv6", "on"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "IPv4 (iptables-" + b + "): installed")) << r.out;
  EXPECT_TRUE(has(r.out, "IPv6 (ip6tables-" + b + "): installed")) << r.out;
  const std::string after4 = pod_->nat(v4_save()), after6 = pod_->nat(v6_save());
  for (const std::string* t : {&after4, &after6}) {
    EXPECT_TRUE(has(*t, ":H2MESH_OUTPUT - [0:0]\n:H2MESH_REDIRECT - [0:0]\n")) << *t;
    EXPECT_EQ(count(*t, "-A OUTPUT -p tcp -j H2MESH_OUTPUT\n"), 1u) << *t;
    // First in OUTPUT: no other NAT rule sees (and rewrites) outbound TCP before the sidecar.
    EXPECT_TRUE(has(*t, ":H2MESH_REDIRECT - [0:0]\n-A OUTPUT -p tcp -j H2MESH_OUTPUT\n")) << *t;
    EXPECT_TRUE(has(*t, "-A H2MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN\n")) << *t;
    EXPECT_TRUE(has(*t, "-A H2MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n")) << *t;
    EXPECT_TRUE(has(*t, "-A FOREIGN -p udp -j RETURN\n")) << *t;
  }
  EXPECT_TRUE(has(after4, "-A H2MESH_OUTPUT -d 127.0.0.0/8 -j RETURN\n")) << after4;
  EXPECT_TRUE(has(after6, "-A H2MESH_OUTPUT -d ::1/128 -j RETURN\n")) << after6;
  // Never both backends.
  EXPECT_FALSE(has(pod_->nat("iptables-" + other + "-save"), "H2MESH"));
  EXPECT_FALSE(has(pod_->nat("ip6tables-" + other + "-save"), "H2MESH"));

  r = pod_->h2mesh({"iptables", "install", "--backend", b, "--ipv6", "on"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "replaced the rules that were installed")) << r.out;
  EXPECT_EQ(pod_->nat(v4_save()), after4);
  EXPECT_EQ(pod_->nat(v6_save()), after6);

  r = pod_->h2mesh({"iptables", "show", "--backend", b, "--ipv6", "on"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "# IPv4 (iptables-" + b + ")\n:H2MESH_OUTPUT - [0:0]\n")) << r.out;
  EXPECT_TRUE(has(r.out, "# IPv6 (ip6tables-" + b + ")\n:H2MESH_OUTPUT - [0:0]\n")) << r.out;
  EXPECT_EQ(count(r.out, "-A OUTPUT -p tcp -j H2MESH_OUTPUT\n"), 2u) << r.out;
  EXPECT_FALSE(has(r.out, "FOREIGN")) << "show prints h2mesh's rules only:\n" << r.out;

  r = pod_->h2mesh({"iptables", "uninstall", "--backend", b, "--ipv6", "on"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "IPv4 (iptables-" + b + "): removed")) << r.out;
  EXPECT_EQ(pod_->nat(v4_save()), before4);
  EXPECT_EQ(pod_->nat(v6_save()), before6);

  r = pod_->h2mesh({"iptables", "uninstall", "--backend", b, "--ipv6", "on"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "not installed")) << r.out;
  EXPECT_TRUE(has(r.out, "nothing to remove")) << r.out;
  r = pod_->h2mesh({"iptables", "show", "--backend", b});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count(r.out, "not installed"), 2u) << r.out;
}

TEST_P(IptablesBackendTest, DryRunRunsNothingAndPrintsWhatInstallApplies) {
  const std::string b = GetParam();
  const std::vector<std::string> flags = {"--backend",
                                          b,
                                          "--ipv6",
                                          "off",
                                          "--proxy-uid",
                                          "2102",
                                          "--skip-outbound-ports",
                                          "25,3306",
                                          "--skip-outbound-cidrs",
                                          "10.0.0.0/8,fd00::/8",
                                          "--include-outbound-cidrs",
                                          "10.96.0.0/12"};
  const std::string before = pod_->nat(v4_save());
  // No capability needed: it only prints.
  std::vector<std::string> dry = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                  kH2mesh,   "iptables",      "install",       "--dry-run"};
  dry.insert(dry.end(), flags.begin(), flags.end());
  Outcome r = pod_->exec(dry);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(pod_->nat(v4_save()), before);
  const std::string header = "# IPv4: iptables-" + b + "-restore --noflush\n";
  ASSERT_TRUE(r.out.starts_with(header)) << r.out;

  // Fed to iptables-restore by hand, the printed input gives exactly the table install gives.
  pod_->must({"iptables-" + b + "-restore", "--noflush"}, r.out.substr(header.size()));
  const std::string by_hand = pod_->nat(v4_save());
  EXPECT_TRUE(has(by_hand, "-A H2MESH_OUTPUT -d 10.96.0.0/12 -j H2MESH_REDIRECT\n")) << by_hand;
  std::vector<std::string> uninstall = {"iptables", "uninstall", "--backend", b, "--ipv6", "off"};
  ASSERT_EQ(pod_->h2mesh(uninstall).code, 0);
  std::vector<std::string> install = {"iptables", "install"};
  install.insert(install.end(), flags.begin(), flags.end());
  r = pod_->h2mesh(install);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(pod_->nat(v4_save()), by_hand);
}

INSTANTIATE_TEST_SUITE_P(Backends, IptablesBackendTest, ::testing::Values("nft", "legacy"),
                         [](const auto& info) { return info.param; });

TEST_F(IptablesTest, AutoBackendWritesWhereTheNodesRulesAre) {
  // Only legacy holds rules (as on a node whose kube-proxy uses iptables-legacy): auto follows.
  pod_->must({"iptables-legacy", "-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "1", "-j",
              "ACCEPT"});
  Outcome r = pod_->h2mesh({"iptables", "install"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "IPv4 (iptables-legacy): installed")) << r.out;
  EXPECT_TRUE(has(pod_->nat("iptables-legacy-save"), ":H2MESH_OUTPUT"));
  EXPECT_FALSE(has(pod_->nat("iptables-nft-save"), "H2MESH"));
  r = pod_->h2mesh({"iptables", "show"});
  EXPECT_TRUE(has(r.out, "# IPv4 (iptables-legacy)\n:H2MESH_OUTPUT")) << r.out;
  r = pod_->h2mesh({"iptables", "uninstall"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(has(pod_->nat("iptables-legacy-save"), "H2MESH"));

  // A namespace where neither holds rules: nft, what `iptables` is on Debian 12.
  Netns fresh("fresh");
  ASSERT_TRUE(fresh.ok());
  r = fresh.h2mesh({"iptables", "install"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "IPv4 (iptables-nft): installed")) << r.out;
  EXPECT_TRUE(has(fresh.nat("iptables-nft-save"), ":H2MESH_OUTPUT"));
}

TEST_F(IptablesTest, WithoutNetAdminItIsRefusedWithItsOwnExitCode) {
  const std::string before = pod_->nat("iptables-nft-save");
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", kH2mesh, "iptables",
            "install"},
           // Root, but without the capability (a container that was not given NET_ADMIN).
           {"capsh", "--drop=cap_net_admin", "--", "-c", "exec \"$0\" iptables install",
            kH2mesh}}) {
    Outcome r = pod_->exec(argv);
    EXPECT_EQ(r.code, 3) << joined(argv) << "\n" << r.out << r.err;
    EXPECT_TRUE(has(r.err, "not permitted: changing the nat table needs CAP_NET_ADMIN")) << r.err;
    EXPECT_TRUE(has(r.err, "NET_ADMIN and NET_RAW")) << r.err;
  }
  Outcome r = pod_->exec(
      {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", kH2mesh, "iptables", "show"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(has(r.err, "reading the nat table needs CAP_NET_ADMIN")) << r.err;
  EXPECT_EQ(pod_->nat("iptables-nft-save"), before);
}

TEST_F(IptablesTest, MissingBinariesAreNamed) {
  for (const char* backend : {"auto", "legacy"}) {
    Outcome r = pod_->exec({"/usr/bin/env", "PATH=/nonexistent", kH2mesh, "iptables", "install",
                            "--backend", backend});
    EXPECT_EQ(r.code, 1) << r.err;
    const std::string tool =
        std::string("iptables-") + (backend == std::string("auto") ? "nft" : "legacy");
    EXPECT_TRUE(has(r.err, tool + "-restore not found: install the iptables package")) << r.err;
  }
}

// A directory with an ip6tables-nft-restore that always fails, first in $PATH.
class FailingIp6tables {
 public:
  FailingIp6tables() {
    char dir[] = "/tmp/h2mesh-ipt-XXXXXX";
    dir_ = mkdtemp(dir) ? dir : "";
    std::ofstream(script()) << "#!/bin/sh\n"
                               "echo 'ip6tables-nft-restore: line 2 failed (simulated)' >&2\n"
                               "exit 1\n";
    chmod(script().c_str(), 0755);
  }
  ~FailingIp6tables() {
    unlink(script().c_str());
    rmdir(dir_.c_str());
  }
  std::string path_variable() const { return "PATH=" + dir_ + ":/usr/sbin:/usr/bin:/sbin:/bin"; }

 private:
  std::string script() const { return dir_ + "/ip6tables-nft-restore"; }
  std::string dir_;
};

TEST_F(IptablesTest, Ipv6FailureRollsIpv4Back) {
  FailingIp6tables failing;
  const std::string empty = pod_->nat("iptables-nft-save");
  Outcome r = pod_->exec({"/usr/bin/env", failing.path_variable(), kH2mesh, "iptables", "install",
                          "--backend", "nft", "--ipv6", "on"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(has(r.err, "IPv6 (ip6tables-nft): install failed: ip6tables-nft-restore failed"))
      << r.err;
  EXPECT_TRUE(has(r.err, "line 2 failed (simulated)")) << r.err;
  EXPECT_TRUE(has(r.err, "IPv4 (iptables-nft): rolled back")) << r.err;
  EXPECT_TRUE(has(r.err, "--ipv6 off")) << r.err;
  EXPECT_EQ(pod_->nat("iptables-nft-save"), empty) << "no half-installed state";

  // Over an earlier install, the rollback gives back that install, not an empty table.
  r = pod_->h2mesh({"iptables", "install", "--backend", "nft"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string installed = pod_->nat("iptables-nft-save");
  r = pod_->exec({"/usr/bin/env", failing.path_variable(), kH2mesh, "iptables", "install",
                  "--backend", "nft", "--ipv6", "on", "--outbound-port", "15002"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(pod_->nat("iptables-nft-save"), installed);
}

// ---- Where connections go -------------------------------------------------------------------

// Runs `fn` on a thread of its own inside the namespace `ns` (setns changes only the calling
// thread's namespace; a socket stays in the namespace it was made in) with the given fsuid and
// fsgid: netfilter's owner match reads them from the socket's file.
template <typename Fn>
void in_namespace(const Netns& ns, uint32_t fsuid, uint32_t fsgid, Fn fn) {
  std::thread t([&] {
    int fd = open(("/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(setns(fd, CLONE_NEWNET), 0) << strerror(errno);
    close(fd);
    // Raw system calls: glibc's wrappers of set*id change every thread of the process.
    syscall(SYS_setfsgid, fsgid);
    syscall(SYS_setfsuid, fsuid);
    fn();
  });
  t.join();
}

struct Endpoint {
  std::string ip;
  uint16_t port;
};

sockaddr_storage address_of(const Endpoint& e, socklen_t* len) {
  sockaddr_storage ss{};
  if (e.ip.find(':') == std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(e.port);
    inet_pton(AF_INET, e.ip.c_str(), &a->sin_addr);
    *len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(e.port);
    inet_pton(AF_INET6, e.ip.c_str(), &a->sin6_addr);
    *len = sizeof(sockaddr_in6);
  }
  return ss;
}

Endpoint endpoint_of(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    return {text, ntohs(a->sin_port)};
  }
  auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
  return {text, ntohs(a->sin6_port)};
}

struct Listener {
  std::string name;
  int fd = -1;
};

class TrafficTest : public IptablesTest {
 protected:
  void SetUp() override {
    IptablesTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    peer_ = std::make_unique<Netns>("peer");
    ASSERT_TRUE(peer_->ok());
    // The pod and a host outside it, joined by a veth pair: 10.99.0.2 ↔ 10.99.0.1 (and
    // fd99::2 ↔ fd99::1); the peer also answers for 10.99.1.1, a network the pod routes to it.
    const std::string p = pod_->name(), q = peer_->name();
    for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
             {"ip", "-n", p, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
              "netns", q},
             {"ip", "-n", p, "link", "set", "lo", "up"},
             {"ip", "-n", q, "link", "set", "lo", "up"},
             {"ip", "-n", p, "addr", "add", "10.99.0.2/24", "dev", "veth0"},
             {"ip", "-n", q, "addr", "add", "10.99.0.1/24", "dev", "veth1"},
             {"ip", "-n", p, "addr", "add", "fd99::2/64", "dev", "veth0", "nodad"},
             {"ip", "-n", q, "addr", "add", "fd99::1/64", "dev", "veth1", "nodad"},
             {"ip", "-n", q, "addr", "add", "10.99.1.1/32", "dev", "lo"},
             {"ip", "-n", p, "link", "set", "veth0", "up"},
             {"ip", "-n", q, "link", "set", "veth1", "up"},
             {"ip", "-n", p, "route", "add", "10.99.1.0/24", "via", "10.99.0.1"}}) {
      Outcome r = run(cmd);
      ASSERT_EQ(r.code, 0) << joined(cmd) << ": " << r.err;
    }
    listen_in(*pod_, "sidecar", "0.0.0.0", 15001);
    listen_in(*pod_, "sidecar6", "::", 15001);
    listen_in(*pod_, "pod-loopback", "127.0.0.1", 8080);
    listen_in(*pod_, "pod-own-address", "10.99.0.2", 8081);
    listen_in(*peer_, "peer:80", "0.0.0.0", 80);
    listen_in(*peer_, "peer6:80", "::", 80);
    listen_in(*peer_, "peer:81", "0.0.0.0", 81);
    listen_in(*peer_, "peer:9901", "0.0.0.0", 9901);
  }
  void TearDown() override {
    for (Listener& l : listeners_) close(l.fd);
    peer_.reset();
  }

  void listen_in(const Netns& ns, const std::string& name, const std::string& ip, uint16_t port) {
    int fd = -1;
    in_namespace(ns, 0, 0, [&] {
      socklen_t len;
      sockaddr_storage ss = address_of({ip, port}, &len);
      fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 16) != 0) {
        ADD_FAILURE() << "listen on " << ip << ":" << port << ": " << strerror(errno);
        close(fd);
        fd = -1;
      }
    });
    ASSERT_GE(fd, 0);
    listeners_.push_back({name, fd});
  }

  // Connects from the pod as (fsuid, fsgid) to `to`; returns the name of the listener that got
  // the connection ("" if none within 5 s) and, for the sidecar's, the original destination.
  std::string connect_from_pod(uint32_t fsuid, uint32_t fsgid, const Endpoint& to,
                               Endpoint* original = nullptr) {
    return connect_from(*pod_, fsuid, fsgid, to, original);
  }

  // The same from `ns` (the peer: traffic arriving at the pod).
  std::string connect_from(const Netns& ns, uint32_t fsuid, uint32_t fsgid, const Endpoint& to,
                           Endpoint* original = nullptr) {
    int fd = -1;
    socklen_t len;
    sockaddr_storage ss = address_of(to, &len);
    in_namespace(ns, fsuid, fsgid,
                 [&] { fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0); });
    if (fd < 0) return "socket failed";
    if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
      close(fd);
      return std::string("connect failed: ") + strerror(errno);
    }
    // One connection reaches exactly one listener: whichever becomes readable is the answer.
    std::vector<pollfd> fds;
    for (const Listener& l : listeners_) fds.push_back({l.fd, POLLIN, 0});
    std::string got;
    if (poll(fds.data(), fds.size(), 5000) > 0) {
      for (size_t i = 0; i < fds.size() && got.empty(); ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        int accepted = accept4(listeners_[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (accepted < 0) continue;
        got = listeners_[i].name;
        sockaddr_storage dst{};
        socklen_t dst_len = sizeof(dst);
        bool v6 = ss.ss_family == AF_INET6;
        if (original && getsockopt(accepted, v6 ? SOL_IPV6 : SOL_IP,
                                   v6 ? kIp6tSoOriginalDst : SO_ORIGINAL_DST, &dst, &dst_len) == 0)
          *original = endpoint_of(dst);
        close(accepted);
      }
    }
    close(fd);
    return got;
  }

  std::unique_ptr<Netns> peer_;
  std::vector<Listener> listeners_;
};

TEST_F(TrafficTest, OutboundTcpGoesToTheSidecarExceptWhatIsExempt) {
  // Before install, everything goes where it was sent.
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.0.1", 80}), "peer:80");

  Outcome r = pod_->h2mesh({"iptables", "install", "--proxy-uid", "1337", "--proxy-gid", "1338",
                            "--skip-outbound-ports", "81", "--skip-outbound-cidrs",
                            "10.99.1.0/24,fd99:1::/64", "--ipv6", "on"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;

  Endpoint original{"", 0};
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.0.1", 80}, &original), "sidecar");
  EXPECT_EQ(original.ip, "10.99.0.1") << "SO_ORIGINAL_DST tells the sidecar where it was going";
  EXPECT_EQ(original.port, 80);
  original = {"", 0};
  EXPECT_EQ(connect_from_pod(0, 0, {"fd99::1", 80}, &original), "sidecar6");
  EXPECT_EQ(original.ip, "fd99::1");
  EXPECT_EQ(original.port, 80);

  // The sidecar's own connections, by uid or by gid, leave as they are: no loop.
  EXPECT_EQ(connect_from_pod(1337, 0, {"10.99.0.1", 80}), "peer:80");
  EXPECT_EQ(connect_from_pod(0, 1338, {"10.99.0.1", 80}), "peer:80");
  EXPECT_EQ(connect_from_pod(1337, 1337, {"fd99::1", 80}), "peer6:80");
  // Another uid is intercepted like root.
  EXPECT_EQ(connect_from_pod(1000, 1000, {"10.99.0.1", 80}), "sidecar");

  // Exemptions: skipped port, skipped CIDR, the admin port, loopback, the pod's own address.
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.0.1", 81}), "peer:81");
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.1.1", 80}), "peer:80");
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.0.1", 9901}), "peer:9901");
  EXPECT_EQ(connect_from_pod(0, 0, {"127.0.0.1", 8080}), "pod-loopback");
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.0.2", 8081}), "pod-own-address");

  r = pod_->h2mesh({"iptables", "uninstall"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.0.1", 80}), "peer:80");
}

TEST_F(TrafficTest, IncludeListRedirectsOnlyThoseDestinations) {
  Outcome r = pod_->h2mesh({"iptables", "install", "--include-outbound-cidrs", "10.99.0.0/24",
                            "--backend", "legacy", "--ipv6", "on"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.0.1", 80}), "sidecar");
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.1.1", 80}), "peer:80");
  // No IPv6 range included: no IPv6 destination is redirected.
  EXPECT_EQ(connect_from_pod(0, 0, {"fd99::1", 80}), "peer6:80");
}

TEST_F(TrafficTest, InboundTcpGoesToTheInboundPortExceptWhatIsExempt) {
  listen_in(*pod_, "inbound", "0.0.0.0", 15006);
  listen_in(*pod_, "inbound6", "::", 15006);
  listen_in(*pod_, "app:8082", "0.0.0.0", 8082);
  listen_in(*pod_, "pod:9901", "0.0.0.0", 9901);
  listen_in(*pod_, "pod:8083", "0.0.0.0", 8083);
  EXPECT_EQ(connect_from(*peer_, 0, 0, {"10.99.0.2", 8082}), "app:8082");

  Outcome r = pod_->h2mesh({"iptables", "install", "--inbound-port", "15006",
                            "--skip-inbound-ports", "8083", "--ipv6", "on"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("inbound TCP to port 15006"), std::string::npos) << r.out;

  Endpoint original{"", 0};
  EXPECT_EQ(connect_from(*peer_, 0, 0, {"10.99.0.2", 8082}, &original), "inbound");
  EXPECT_EQ(original.ip, "10.99.0.2") << "SO_ORIGINAL_DST gives the app's address and port";
  EXPECT_EQ(original.port, 8082);
  original = {"", 0};
  EXPECT_EQ(connect_from(*peer_, 0, 0, {"fd99::2", 8082}, &original), "inbound6");
  EXPECT_EQ(original.port, 8082);

  // Exempt: the admin port (probes from the node), a skipped port, the outbound port (no loop).
  EXPECT_EQ(connect_from(*peer_, 0, 0, {"10.99.0.2", 9901}), "pod:9901");
  EXPECT_EQ(connect_from(*peer_, 0, 0, {"10.99.0.2", 8083}), "pod:8083");
  EXPECT_EQ(connect_from(*peer_, 0, 0, {"10.99.0.2", 15001}), "sidecar");
  // Inside the pod (over lo): the sidecar forwarding to the app, or the app calling itself.
  EXPECT_EQ(connect_from_pod(1337, 1337, {"10.99.0.2", 8082}), "app:8082");
  EXPECT_EQ(connect_from_pod(0, 0, {"10.99.0.2", 8082}), "app:8082");

  r = pod_->h2mesh({"iptables", "show"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("-A PREROUTING -p tcp -j H2MESH_INBOUND"), std::string::npos) << r.out;
  r = pod_->h2mesh({"iptables", "uninstall"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(connect_from(*peer_, 0, 0, {"10.99.0.2", 8082}), "app:8082");
  r = pod_->h2mesh({"iptables", "show"});
  EXPECT_EQ(r.out.find("H2MESH_"), std::string::npos) << "every chain of ours is gone:\n" << r.out;
}

}  // namespace
}  // namespace h2mesh
