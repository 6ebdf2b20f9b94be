#include "net/original_dst.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace h2mesh::net {
namespace {

// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>, which do not mix
// with glibc's network headers. Both are 80, at levels SOL_IP and SOL_IPV6.
constexpr int kSoOriginalDst = 80;
constexpr int kIp6tSoOriginalDst = 80;

std::optional<config::SocketAddress> from_sockaddr(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN];
  if (ss.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(ss);
    if (!inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text)) return std::nullopt;
    return config::SocketAddress{text, ntohs(sin.sin_port)};
  }
  if (ss.ss_family == AF_INET6) {
    const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(ss);
    // An IPv4 client of a dual-stack socket: the address it dialled is an IPv4 one.
    if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
      if (!inet_ntop(AF_INET, &sin6.sin6_addr.s6_addr[12], text, sizeof text)) return std::nullopt;
    } else if (!inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof text)) {
      return std::nullopt;
    }
    return config::SocketAddress{text, ntohs(sin6.sin6_port)};
  }
  return std::nullopt;
}

bool is_loopback_or_unspecified(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    const uint32_t a = ntohl(v4.s_addr);
    return (a >> 24) == 127 || a == INADDR_ANY;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6) || IN6_IS_ADDR_UNSPECIFIED(&v6);
  return false;
}

bool is_interface_address(const std::string& host) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (const ifaddrs* ifa = list; ifa && !found; ifa = ifa->ifa_next) {
    if (!ifa->ifa_addr) continue;
    sockaddr_storage ss{};
    if (ifa->ifa_addr->sa_family == AF_INET) {
      std::memcpy(&ss, ifa->ifa_addr, sizeof(sockaddr_in));
    } else if (ifa->ifa_addr->sa_family == AF_INET6) {
      std::memcpy(&ss, ifa->ifa_addr, sizeof(sockaddr_in6));
    } else {
      continue;
    }
    auto address = from_sockaddr(ss);
    found = address && address->host == host;
  }
  freeifaddrs(list);
  return found;
}

}  // namespace

std::optional<config::SocketAddress> local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return from_sockaddr(ss);
}

std::optional<config::SocketAddress> original_destination(int fd) {
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return std::nullopt;
  const bool ipv6 = local.ss_family == AF_INET6 &&
                    !IN6_IS_ADDR_V4MAPPED(&reinterpret_cast<sockaddr_in6&>(local).sin6_addr);
  if (local.ss_family != AF_INET && local.ss_family != AF_INET6) return std::nullopt;

  // A v4-mapped connection is an IPv4 one to conntrack: SOL_IP works on the IPv6 socket too.
  sockaddr_storage original{};
  len = ipv6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  const int rc = ipv6 ? getsockopt(fd, SOL_IPV6, kIp6tSoOriginalDst, &original, &len)
                      : getsockopt(fd, SOL_IP, kSoOriginalDst, &original, &len);
  if (rc == 0) return from_sockaddr(original);
  // ENOENT: conntrack has no entry for this connection, ENOPROTOOPT: no conntrack module for
  // this family. Either way nothing rewrote the destination: the client dialled this socket.
  if (errno == ENOENT || errno == ENOPROTOOPT) return from_sockaddr(local);
  return std::nullopt;
}

bool is_own_listener(int accepted_fd, const config::SocketAddress& original) {
  auto local = local_address(accepted_fd);
  if (!local || original.port != local->port) return false;
  return original.host == local->host || is_loopback_or_unspecified(original.host) ||
         is_interface_address(original.host);
}

}  // namespace h2mesh::net
