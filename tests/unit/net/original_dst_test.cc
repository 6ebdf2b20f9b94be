// original_destination() and the loop guard on real sockets. The first tests need nothing but
// loopback; the last one (root) builds a network namespace with iptables REDIRECT rules, as the
// sidecar's init step does, and checks that the address the client dialled comes back.

#include "net/original_dst.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "net/socket.h"

namespace h2mesh::net {
namespace {

// A listening socket on `host`:0; `dual_stack` clears IPV6_V6ONLY on an IPv6 one so that IPv4
// clients arrive as v4-mapped addresses.
int listen_on(const std::string& host, bool dual_stack = false) {
  const bool v6 = host.find(':') != std::string::npos;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  int v6only = dual_stack ? 0 : 1;
  if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  auto sa = to_sockaddr({host, 0});
  EXPECT_TRUE(sa.ok());
  EXPECT_EQ(bind(fd, sa->get(), sa->len), 0) << host << ": " << strerror(errno);
  EXPECT_EQ(listen(fd, 16), 0);
  return fd;
}

// A blocking connect to host:port; -1 on failure.
int dial(const std::string& host, uint16_t port) {
  auto sa = to_sockaddr({host, port});
  if (!sa) return -1;
  int fd = socket(sa->storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, sa->get(), sa->len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// The accepted end of a connection from `host`:`port` to `listener`.
struct Accepted {
  int client = -1;
  int server = -1;
  ~Accepted() {
    if (client >= 0) close(client);
    if (server >= 0) close(server);
  }
};
void connect_and_accept(int listener, const std::string& host, uint16_t port, Accepted* out) {
  out->client = dial(host, port);
  ASSERT_GE(out->client, 0) << "connect to " << host << ":" << port << ": " << strerror(errno);
  out->server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(out->server, 0);
}

bool has_ipv6_loopback() {
  int fd = dial("::1", 9);  // refused or not: what matters is whether ::1 exists
  if (fd >= 0) close(fd);
  return errno != EADDRNOTAVAIL && errno != ENETUNREACH && errno != EAFNOSUPPORT;
}

TEST(OriginalDestination, PlainConnectionReportsTheListenersOwnAddress) {
  int listener = listen_on("127.0.0.1");
  const uint16_t port = local_port(listener);
  Accepted conn;
  connect_and_accept(listener, "127.0.0.1", port, &conn);
  auto original = original_destination(conn.server);
  ASSERT_TRUE(original.has_value());
  EXPECT_EQ(original->to_string(), "127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(is_own_listener(conn.server, *original))
      << "a connection that was not redirected is addressed to the listener: the loop guard";
  close(listener);
}

TEST(OriginalDestination, Ipv4ClientOfDualStackSocketIsReportedAsIpv4) {
  if (!has_ipv6_loopback()) GTEST_SKIP() << "no IPv6 on this host";
  int listener = listen_on("::", /*dual_stack=*/true);
  const uint16_t port = local_port(listener);
  Accepted conn;
  connect_and_accept(listener, "127.0.0.1", port, &conn);
  auto original = original_destination(conn.server);
  ASSERT_TRUE(original.has_value());
  EXPECT_EQ(original->to_string(), "127.0.0.1:" + std::to_string(port)) << "not ::ffff:127.0.0.1";
  EXPECT_EQ(local_address(conn.server)->to_string(), "127.0.0.1:" + std::to_string(port));
  close(listener);
}

TEST(OriginalDestination, Ipv6Connection) {
  if (!has_ipv6_loopback()) GTEST_SKIP() << "no IPv6 on this host";
  int listener = listen_on("::1");
  const uint16_t port = local_port(listener);
  Accepted conn;
  connect_and_accept(listener, "::1", port, &conn);
  auto original = original_destination(conn.server);
  ASSERT_TRUE(original.has_value());
  EXPECT_EQ(original->to_string(), "[::1]:" + std::to_string(port));
  close(listener);
}

TEST(OriginalDestination, UnconnectedSocketHasNone) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_FALSE(original_destination(fd).has_value());
  close(fd);
}

TEST(LoopGuard, OwnPortOnAnAddressOfThisHostIsTheListener) {
  int listener = listen_on("127.0.0.1");
  const uint16_t port = local_port(listener);
  Accepted conn;
  connect_and_accept(listener, "127.0.0.1", port, &conn);
  const auto own = [&](const std::string& host, uint16_t p) {
    return is_own_listener(conn.server, config::SocketAddress{host, p});
  };
  EXPECT_FALSE(own("127.0.0.1", static_cast<uint16_t>(port + 1))) << "another port";
  EXPECT_FALSE(own("192.0.2.7", port)) << "the same port on another host (TEST-NET-1)";
  EXPECT_FALSE(own("2001:db8::7", port)) << "the same port on another host (documentation range)";
  EXPECT_TRUE(own("127.0.0.9", port)) << "all of 127/8 is this host";
  EXPECT_TRUE(own("0.0.0.0", port)) << "connecting to the unspecified address reaches this host";
  EXPECT_TRUE(own("::1", port));
  EXPECT_TRUE(own("::", port));

  // An address of one of this host's interfaces (the pod IP, in a pod).
  ifaddrs* list = nullptr;
  ASSERT_EQ(getifaddrs(&list), 0);
  std::optional<std::string> interface_address;
  for (ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
    if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ifa->ifa_addr)->sin_addr, text,
              sizeof text);
    if (std::string(text).rfind("127.", 0) != 0) {
      interface_address = text;
      break;
    }
  }
  freeifaddrs(list);
  if (interface_address) {
    EXPECT_TRUE(own(*interface_address, port)) << *interface_address;
    EXPECT_FALSE(own(*interface_address, static_cast<uint16_t>(port + 1)));
  }
  close(listener);
}

// ---- root: iptables REDIRECT in a network namespace of the test's own ---------------------------

// Moves the calling thread into a new network namespace and back out when destroyed; the
// namespace, its interfaces and its iptables rules vanish with the last socket in it.
class ScopedNetns {
 public:
  ScopedNetns() {
    original_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    ok_ = original_ >= 0 && unshare(CLONE_NEWNET) == 0;
  }
  ~ScopedNetns() {
    if (original_ >= 0) {
      if (setns(original_, CLONE_NEWNET) != 0) std::abort();  // the rest of the run needs it
      close(original_);
    }
  }
  bool ok() const { return ok_; }

 private:
  int original_ = -1;
  bool ok_ = false;
};

bool sh(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

TEST(OriginalDestination, RedirectedConnectionReportsTheDialledAddress) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: a network namespace and iptables rules";
  ScopedNetns netns;
  ASSERT_TRUE(netns.ok()) << "unshare(CLONE_NEWNET): " << strerror(errno);
  ASSERT_TRUE(sh("ip link set lo up"));
  // The namespace's own address (a pod IP), and routes for the dialled addresses, as a pod has
  // for Service IPs; nothing answers there.
  ASSERT_TRUE(sh("ip addr add 192.0.2.1/24 dev lo"));
  ASSERT_TRUE(sh("ip route add 192.0.2.0/24 dev lo"));
  ASSERT_TRUE(sh("ip addr add 2001:db8::1/64 dev lo nodad"));

  // One dual-stack listener, like an outbound listener on [::]: IPv4 clients come v4-mapped.
  int listener = listen_on("::", /*dual_stack=*/true);
  const std::string port = std::to_string(local_port(listener));
  ASSERT_TRUE(sh("iptables -t nat -A OUTPUT -p tcp -d 192.0.2.10 --dport 5000 -j REDIRECT "
                 "--to-ports " + port));
  ASSERT_TRUE(sh("ip6tables -t nat -A OUTPUT -p tcp -d 2001:db8::10 --dport 5000 -j REDIRECT "
                 "--to-ports " + port));

  {
    Accepted conn;
    connect_and_accept(listener, "192.0.2.10", 5000, &conn);
    auto original = original_destination(conn.server);
    ASSERT_TRUE(original.has_value());
    EXPECT_EQ(original->to_string(), "192.0.2.10:5000");
    EXPECT_EQ(local_address(conn.server)->to_string(), "127.0.0.1:" + port)
        << "REDIRECT of a local connection goes to loopback";
    EXPECT_FALSE(is_own_listener(conn.server, *original));
  }
  {
    Accepted conn;
    connect_and_accept(listener, "2001:db8::10", 5000, &conn);
    auto original = original_destination(conn.server);
    ASSERT_TRUE(original.has_value());
    EXPECT_EQ(original->to_string(), "[2001:db8::10]:5000");
    EXPECT_FALSE(is_own_listener(conn.server, *original));
  }
  {
    // Not redirected, straight to the listener through the namespace's own address: a loop.
    Accepted conn;
    connect_and_accept(listener, "192.0.2.1", local_port(listener), &conn);
    auto original = original_destination(conn.server);
    ASSERT_TRUE(original.has_value());
    EXPECT_EQ(original->to_string(), "192.0.2.1:" + port);
    EXPECT_TRUE(is_own_listener(conn.server, *original));
  }
  close(listener);
}

}  // namespace
}  // namespace h2mesh::net
