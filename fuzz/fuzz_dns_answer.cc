// DNS discovery's answer handling: two raw response packets (the A answer, then the AAAA
// answer; the first two input bytes give the A packet's length) parsed by c-ares as the
// resolver parses them, then merged into the endpoint set a round reports.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "discovery/dns_answer.h"

namespace d = h2mesh::discovery;

namespace {

void check_answer(const d::DnsAnswer& a, int family) {
  switch (a.kind) {
    case d::DnsAnswer::Kind::Records:
      if (a.records.empty() || !a.min_ttl) abort();
      for (const auto& r : a.records)
        if (r.family != family) abort();
      break;
    case d::DnsAnswer::Kind::Empty:
    case d::DnsAnswer::Kind::Failed:
      if (!a.records.empty() || a.detail.empty()) abort();
      break;
    case d::DnsAnswer::Kind::Pending:
      abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t a_len = (size_t{data[0]} << 8) | data[1];
  data += 2;
  size -= 2;
  if (a_len > size) a_len = size;
  // Copies of exactly the packet's size, so that ASan sees any read past its end.
  std::vector<unsigned char> a_packet(data, data + a_len);
  std::vector<unsigned char> aaaa_packet(data + a_len, data + size);

  d::DnsAnswer a = d::parse_dns_answer(AF_INET, a_packet.data(), static_cast<int>(a_len));
  d::DnsAnswer aaaa =
      d::parse_dns_answer(AF_INET6, aaaa_packet.data(), static_cast<int>(aaaa_packet.size()));
  check_answer(a, AF_INET);
  check_answer(aaaa, AF_INET6);
  if (a.kind == d::DnsAnswer::Kind::Failed || aaaa.kind == d::DnsAnswer::Kind::Failed) return 0;

  std::vector<d::DnsRecord> records = a.records;
  records.insert(records.end(), aaaa.records.begin(), aaaa.records.end());
  size_t before = records.size();
  auto endpoints = d::dns_endpoints(records, 50051);
  if (endpoints.size() != records.size() || endpoints.size() > before) abort();
  for (size_t i = 0; i < endpoints.size(); ++i) {
    // Each endpoint is the text form of its record, and reads back to the same bytes.
    const auto& host = endpoints[i].address.host;
    unsigned char bytes[16] = {};
    int family = records[i].family;
    if (inet_pton(family, host.c_str(), bytes) != 1) abort();
    if (memcmp(bytes, records[i].bytes.data(), family == AF_INET ? 4 : 16) != 0) abort();
    if (endpoints[i].address.port != 50051 || !endpoints[i].ready) abort();
    if (i > 0 && !(records[i - 1] < records[i])) abort();  // sorted, no duplicates
  }
  return 0;
}
