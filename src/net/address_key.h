#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "config/config.h"

namespace h2mesh::net {

// An IP address and port in binary form, for hashing and comparing without text: the key of the
// mesh's Service map and of the workers' Service table (a cluster IP and port, looked up from a
// connection's original destination).
struct AddressKey {
  uint8_t family = 0;            // AF_INET or AF_INET6
  uint16_t port = 0;             // host byte order
  std::array<uint8_t, 16> ip{};  // network byte order; IPv4 in the first 4 bytes
  bool operator==(const AddressKey&) const = default;

  // nullopt when `address` is not an IP literal and port.
  static std::optional<AddressKey> from(const config::SocketAddress& address);
  // An AF_INET or AF_INET6 socket address; an IPv4-mapped IPv6 address (a dual-stack socket's
  // view of an IPv4 peer) is taken as the IPv4 address. nullopt for other families.
  static std::optional<AddressKey> from(const sockaddr* address);
};

struct AddressKeyHash {
  size_t operator()(const AddressKey& a) const;
};

}  // namespace h2mesh::net
