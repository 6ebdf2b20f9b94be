#include "discovery/dns_answer.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace h2mesh::discovery {
namespace {

void add_record(DnsAnswer& a, int family, const void* addr, size_t len, int ttl) {
  DnsRecord r;
  r.family = family;
  memcpy(r.bytes.data(), addr, len);
  a.records.push_back(r);
  uint32_t t = ttl < 0 ? 0 : static_cast<uint32_t>(ttl);
  a.min_ttl = a.min_ttl ? std::min(*a.min_ttl, t) : t;
}

}  // namespace

DnsAnswer dns_answer_failed(std::string why) {
  DnsAnswer a;
  a.kind = DnsAnswer::Kind::Failed;
  a.detail = std::move(why);
  return a;
}

DnsAnswer dns_answer_empty(const char* why) {
  DnsAnswer a;
  a.kind = DnsAnswer::Kind::Empty;
  a.detail = why;
  return a;
}

DnsAnswer parse_dns_answer(int family, const unsigned char* abuf, int alen) {
  // An A record takes at least 16 bytes on the wire (compressed name, fixed fields, address), an
  // AAAA record 28: this bounds the records a reply of `alen` bytes (UDP or TCP) can carry.
  size_t cap = static_cast<size_t>(alen < 0 ? 0 : alen) / 16 + 1;
  int n = static_cast<int>(cap);
  int rc;
  DnsAnswer out;
  if (family == AF_INET) {
    std::vector<ares_addrttl> ttls(cap);
    rc = ares_parse_a_reply(abuf, alen, nullptr, ttls.data(), &n);
    for (int i = 0; rc == ARES_SUCCESS && i < n; ++i)
      add_record(out, AF_INET, &ttls[i].ipaddr, 4, ttls[i].ttl);
  } else {
    std::vector<ares_addr6ttl> ttls(cap);
    rc = ares_parse_aaaa_reply(abuf, alen, nullptr, ttls.data(), &n);
    for (int i = 0; rc == ARES_SUCCESS && i < n; ++i)
      add_record(out, AF_INET6, &ttls[i].ip6addr, 16, ttls[i].ttl);
  }
  if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && out.records.empty()))
    return dns_answer_empty("NODATA");
  if (rc != ARES_SUCCESS) return dns_answer_failed(std::string("bad answer: ") + ares_strerror(rc));
  out.kind = DnsAnswer::Kind::Records;
  return out;
}

std::string dns_record_text(const DnsRecord& r) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(r.family, r.bytes.data(), buf, sizeof(buf));
  return buf;
}

std::vector<cluster::DiscoveredEndpoint> dns_endpoints(std::vector<DnsRecord>& records,
                                                       uint16_t port) {
  std::sort(records.begin(), records.end());
  records.erase(std::unique(records.begin(), records.end()), records.end());
  std::vector<cluster::DiscoveredEndpoint> endpoints;
  endpoints.reserve(records.size());
  for (const auto& r : records) {
    cluster::DiscoveredEndpoint ep;
    ep.address = config::SocketAddress{dns_record_text(r), port};
    ep.weight = 1;
    ep.ready = true;
    endpoints.push_back(std::move(ep));
  }
  return endpoints;
}

}  // namespace h2mesh::discovery
