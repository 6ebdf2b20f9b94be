#include "net/address_key.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace h2mesh::net {

std::optional<AddressKey> AddressKey::from(const config::SocketAddress& address) {
  AddressKey a;
  a.port = address.port;
  if (inet_pton(AF_INET, address.host.c_str(), a.ip.data()) == 1) {
    a.family = AF_INET;
  } else if (inet_pton(AF_INET6, address.host.c_str(), a.ip.data()) == 1) {
    a.family = AF_INET6;
  } else {
    return std::nullopt;
  }
  return a;
}

std::optional<AddressKey> AddressKey::from(const sockaddr* address) {
  AddressKey a;
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    a.family = AF_INET;
    a.port = ntohs(in->sin_port);
    memcpy(a.ip.data(), &in->sin_addr, 4);
    return a;
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    a.port = ntohs(in6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      a.family = AF_INET;
      memcpy(a.ip.data(), in6->sin6_addr.s6_addr + 12, 4);
    } else {
      a.family = AF_INET6;
      memcpy(a.ip.data(), in6->sin6_addr.s6_addr, 16);
    }
    return a;
  }
  return std::nullopt;
}

size_t AddressKeyHash::operator()(const AddressKey& a) const {
  // FNV-1a over what tells addresses apart; cluster IPs differ mostly in their last bytes.
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](uint8_t b) {
    h ^= b;
    h *= 1099511628211ULL;
  };
  mix(a.family);
  mix(static_cast<uint8_t>(a.port >> 8));
  mix(static_cast<uint8_t>(a.port));
  for (uint8_t b : a.ip) mix(b);
  return static_cast<size_t>(h);
}

}  // namespace h2mesh::net
