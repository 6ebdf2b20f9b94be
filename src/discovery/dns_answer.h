#pragma once

// What one DNS query of a discovery round (A or AAAA) came back with, and how its records become
// endpoints. Pure functions over the raw answer packet (parsed with c-ares' own parser), so the
// fuzzer and the tests can feed packets without a server or a channel.

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster/host_set.h"

namespace h2mesh::discovery {

// One address record; the byte order makes a sorted set's order stable (IPv4 first).
struct DnsRecord {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
  auto operator<=>(const DnsRecord&) const = default;
};

struct DnsAnswer {
  enum class Kind { Pending, Records, Empty, Failed };
  Kind kind = Kind::Pending;
  std::vector<DnsRecord> records;  // Records: at least one
  std::optional<uint32_t> min_ttl;  // Records: the smallest TTL among them
  std::string detail;               // Empty: NXDOMAIN or NODATA; Failed: what went wrong
};

DnsAnswer dns_answer_failed(std::string why);
DnsAnswer dns_answer_empty(const char* why);

// A NOERROR answer packet of `alen` bytes to a query for `family` (AF_INET: A, else AAAA).
// Records, Empty (no address record, e.g. only a CNAME chain) or Failed (malformed).
DnsAnswer parse_dns_answer(int family, const unsigned char* abuf, int alen);

// The address as text ("10.0.0.1", "fd00::1").
std::string dns_record_text(const DnsRecord& r);

// Sorts and deduplicates `records` in place and returns them as endpoints on `port`, in that
// order (comparable between rounds).
std::vector<cluster::DiscoveredEndpoint> dns_endpoints(std::vector<DnsRecord>& records,
                                                       uint16_t port);

}  // namespace h2mesh::discovery
