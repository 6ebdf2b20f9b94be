// DNS answer packets (as a server sends them) turned into records and endpoints, without a
// server: the part of DNS discovery that fuzz_dns_answer exercises.

#include "discovery/dns_answer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace h2mesh::discovery {
namespace {

using Bytes = std::vector<unsigned char>;

void put16(Bytes& b, unsigned v) {
  b.push_back(static_cast<unsigned char>(v >> 8));
  b.push_back(static_cast<unsigned char>(v));
}

struct Rr {
  unsigned type;
  unsigned ttl;
  Bytes rdata;
};

// A NOERROR reply to one question for greeter.test; answers point back at the question's name.
Bytes reply(unsigned qtype, const std::vector<Rr>& answers) {
  Bytes b;
  put16(b, 0x1234);
  put16(b, 0x8180);
  put16(b, 1);
  put16(b, static_cast<unsigned>(answers.size()));
  put16(b, 0);
  put16(b, 0);
  for (std::string label : {"greeter", "test"}) {
    b.push_back(static_cast<unsigned char>(label.size()));
    b.insert(b.end(), label.begin(), label.end());
  }
  b.push_back(0);
  put16(b, qtype);
  put16(b, 1);
  for (const auto& rr : answers) {
    put16(b, 0xc00c);
    put16(b, rr.type);
    put16(b, 1);
    put16(b, rr.ttl >> 16);
    put16(b, rr.ttl & 0xffff);
    put16(b, static_cast<unsigned>(rr.rdata.size()));
    b.insert(b.end(), rr.rdata.begin(), rr.rdata.end());
  }
  return b;
}

DnsAnswer parse(int family, const Bytes& b) {
  return parse_dns_answer(family, b.data(), static_cast<int>(b.size()));
}

TEST(DnsAnswer, ARecordsGiveTheirAddressesAndTheSmallestTtl) {
  DnsAnswer a = parse(AF_INET, reply(1, {{1, 30, {10, 0, 0, 2}}, {1, 5, {10, 0, 0, 1}}}));
  ASSERT_EQ(a.kind, DnsAnswer::Kind::Records);
  ASSERT_EQ(a.records.size(), 2u);
  EXPECT_EQ(dns_record_text(a.records[0]), "10.0.0.2");
  EXPECT_EQ(a.min_ttl, 5u);
}

TEST(DnsAnswer, CnameWithoutAddressIsNodata) {
  Bytes cname = {3, 'f', 'o', 'o', 0};
  DnsAnswer a = parse(AF_INET, reply(1, {{5, 30, cname}}));
  EXPECT_EQ(a.kind, DnsAnswer::Kind::Empty);
  EXPECT_TRUE(a.records.empty());
}

TEST(DnsAnswer, TruncatedPacketFailsWithoutReadingPastIt) {
  Bytes full = reply(28, {{28, 60, Bytes(16, 0xfd)}});
  for (size_t len = 0; len < full.size(); ++len) {
    Bytes cut(full.begin(), full.begin() + static_cast<long>(len));
    DnsAnswer a = parse(AF_INET6, cut);
    EXPECT_NE(a.kind, DnsAnswer::Kind::Records) << "length " << len;
    EXPECT_FALSE(a.detail.empty());
  }
}

TEST(DnsAnswer, EndpointsAreSortedUniqueIpv4First) {
  DnsAnswer a = parse(AF_INET, reply(1, {{1, 1, {10, 0, 0, 9}}, {1, 1, {10, 0, 0, 1}},
                                         {1, 1, {10, 0, 0, 9}}}));
  Bytes v6(16, 0);
  v6[0] = 0xfd;
  v6[15] = 7;
  DnsAnswer aaaa = parse(AF_INET6, reply(28, {{28, 60, v6}}));
  std::vector<DnsRecord> records = aaaa.records;
  records.insert(records.end(), a.records.begin(), a.records.end());
  auto endpoints = dns_endpoints(records, 50051);
  ASSERT_EQ(endpoints.size(), 3u);
  EXPECT_EQ(endpoints[0].address.to_string(), "10.0.0.1:50051");
  EXPECT_EQ(endpoints[1].address.to_string(), "10.0.0.9:50051");
  EXPECT_EQ(endpoints[2].address.to_string(), "[fd00::7]:50051");
  EXPECT_EQ(records.size(), 3u);
}

}  // namespace
}  // namespace h2mesh::discovery
