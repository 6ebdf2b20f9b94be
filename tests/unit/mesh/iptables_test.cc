// The interception rules as text: what install asks iptables-restore for, how iptables-save
// output is read back, and the transaction between two states (install over a previous install,
// uninstall, rollback).

#include "mesh/iptables.h"

#include <gtest/gtest.h>

namespace h2mesh::mesh {
namespace {

Cidr cidr(const char* text) {
  Result<Cidr> c = parse_cidr(text);
  EXPECT_TRUE(c.ok()) << text;
  return c.ok() ? *c : Cidr{};
}

TEST(InterceptionRules, DefaultsForIpv4) {
  const std::string expected =
      "*nat\n"
      ":H2MESH_OUTPUT - [0:0]\n"
      ":H2MESH_REDIRECT - [0:0]\n"
      "-A H2MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
      "-A H2MESH_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
      "-A H2MESH_OUTPUT -d 127.0.0.0/8 -j RETURN\n"
      "-A H2MESH_OUTPUT -o lo -j RETURN\n"
      "-A H2MESH_OUTPUT -p tcp -m tcp --dport 9901 -j RETURN\n"
      "-A H2MESH_OUTPUT -j H2MESH_REDIRECT\n"
      "-A H2MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
      "-I OUTPUT 1 -p tcp -j H2MESH_OUTPUT\n"
      "COMMIT\n";
  EXPECT_EQ(restore_input({}, interception_rules({}, Family::V4)), expected);
}

TEST(InterceptionRules, EveryFlagForIpv6KeepsOnlyItsOwnFamilysCidrs) {
  InterceptionOptions o;
  o.proxy_uid = 2102;
  o.proxy_gid = 2103;
  o.outbound_port = 4140;
  o.admin_port = 4191;
  o.skip_outbound_ports = {25, 3306};
  o.skip_outbound_cidrs = {cidr("10.0.0.0/8"), cidr("fd00:1::/32")};
  o.include_outbound_cidrs = {cidr("10.96.0.0/12"), cidr("fd00:96::/108")};
  const std::string expected =
      "*nat\n"
      ":H2MESH_OUTPUT - [0:0]\n"
      ":H2MESH_REDIRECT - [0:0]\n"
      "-A H2MESH_OUTPUT -m owner --uid-owner 2102 -j RETURN\n"
      "-A H2MESH_OUTPUT -m owner --gid-owner 2103 -j RETURN\n"
      "-A H2MESH_OUTPUT -d ::1/128 -j RETURN\n"
      "-A H2MESH_OUTPUT -o lo -j RETURN\n"
      "-A H2MESH_OUTPUT -p tcp -m tcp --dport 4191 -j RETURN\n"
      "-A H2MESH_OUTPUT -p tcp -m tcp --dport 25 -j RETURN\n"
      "-A H2MESH_OUTPUT -p tcp -m tcp --dport 3306 -j RETURN\n"
      "-A H2MESH_OUTPUT -d fd00:1::/32 -j RETURN\n"
      "-A H2MESH_OUTPUT -d fd00:96::/108 -j H2MESH_REDIRECT\n"
      "-A H2MESH_REDIRECT -p tcp -j REDIRECT --to-ports 4140\n"
      "-I OUTPUT 1 -p tcp -j H2MESH_OUTPUT\n"
      "COMMIT\n";
  EXPECT_EQ(restore_input({}, interception_rules(o, Family::V6)), expected);
}

TEST(InterceptionRules, IncludeListWithoutThisFamilyRedirectsNothingOfIt) {
  InterceptionOptions o;
  o.include_outbound_cidrs = {cidr("10.96.0.0/12")};
  o.admin_port = 0;  // no rule for it
  NatRules v6 = interception_rules(o, Family::V6);
  for (const Rule& r : v6.rules) {
    EXPECT_EQ(r.spec.find("-j H2MESH_REDIRECT"), std::string::npos) << r.spec;
    EXPECT_EQ(r.spec.find("--dport"), std::string::npos) << r.spec;
  }
  NatRules v4 = interception_rules(o, Family::V4);
  EXPECT_EQ(v4.rules[v4.rules.size() - 2].spec, "-d 10.96.0.0/12 -j H2MESH_REDIRECT");
}

TEST(InterceptionRules, InboundSideRedirectsArrivingTcpExceptTheSidecarsOwnPorts) {
  InterceptionOptions o;
  o.inbound_port = 15006;
  o.skip_inbound_ports = {8443, 9901};  // 9901 twice (admin): one rule
  const std::string expected =
      "*nat\n"
      ":H2MESH_OUTPUT - [0:0]\n"
      ":H2MESH_REDIRECT - [0:0]\n"
      ":H2MESH_INBOUND - [0:0]\n"
      ":H2MESH_IN_REDIRECT - [0:0]\n"
      "-A H2MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
      "-A H2MESH_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
      "-A H2MESH_OUTPUT -d 127.0.0.0/8 -j RETURN\n"
      "-A H2MESH_OUTPUT -o lo -j RETURN\n"
      "-A H2MESH_OUTPUT -p tcp -m tcp --dport 9901 -j RETURN\n"
      "-A H2MESH_OUTPUT -j H2MESH_REDIRECT\n"
      "-A H2MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
      "-A H2MESH_INBOUND -i lo -j RETURN\n"
      "-A H2MESH_INBOUND -p tcp -m tcp --dport 9901 -j RETURN\n"
      "-A H2MESH_INBOUND -p tcp -m tcp --dport 15001 -j RETURN\n"
      "-A H2MESH_INBOUND -p tcp -m tcp --dport 15006 -j RETURN\n"
      "-A H2MESH_INBOUND -p tcp -m tcp --dport 8443 -j RETURN\n"
      "-A H2MESH_INBOUND -p tcp -j H2MESH_IN_REDIRECT\n"
      "-A H2MESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n"
      "-I OUTPUT 1 -p tcp -j H2MESH_OUTPUT\n"
      "-I PREROUTING 1 -p tcp -j H2MESH_INBOUND\n"
      "COMMIT\n";
  EXPECT_EQ(restore_input({}, interception_rules(o, Family::V4)), expected);
  // Read back from a save, it is the same; reinstalling without --inbound-port removes the
  // inbound chains and the PREROUTING hook and nothing else.
  NatRules installed = interception_rules(o, Family::V4);
  EXPECT_EQ(parse_nat_rules("*nat\n" + format_rules(installed) + "COMMIT\n"), installed);
  const std::string back = restore_input(installed, interception_rules({}, Family::V4));
  EXPECT_NE(back.find("-D PREROUTING -p tcp -j H2MESH_INBOUND\n"), std::string::npos) << back;
  EXPECT_NE(back.find("-X H2MESH_INBOUND\n-X H2MESH_IN_REDIRECT\n"), std::string::npos) << back;
  EXPECT_EQ(back.find("-D OUTPUT"), std::string::npos) << back;
}

TEST(ParseCidr, NormalizesAndRejects) {
  EXPECT_EQ(cidr("10.1.2.3/24").to_string(), "10.1.2.0/24");
  EXPECT_EQ(cidr("10.1.2.3").to_string(), "10.1.2.3/32");
  EXPECT_EQ(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
  EXPECT_EQ(cidr("FD00:0:0:1::5/64").to_string(), "fd00:0:0:1::/64");
  EXPECT_EQ(cidr("::1").to_string(), "::1/128");
  EXPECT_EQ(cidr("fd00::/8").family, Family::V6);
  for (const char* bad : {"10.0.0.0/33", "fd00::/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/x",
                          "10.0.0.0/-1", "", "example.com/8", "10.0.0.0/8 "}) {
    Result<Cidr> c = parse_cidr(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.error().code, ErrorCode::InvalidArgument);
    EXPECT_NE(c.error().message.find("invalid CIDR"), std::string::npos) << c.error().message;
  }
}

TEST(ParseLists, PortsAndCidrs) {
  Result<std::vector<uint16_t>> ports = parse_port_list("80, 443,65535");
  ASSERT_TRUE(ports.ok());
  EXPECT_EQ(*ports, (std::vector<uint16_t>{80, 443, 65535}));
  for (const char* bad : {"0", "65536", "80,", ",80", "80,,81", "http", "8o", "-1", ""})
    EXPECT_FALSE(parse_port_list(bad).ok()) << bad;
  Result<std::vector<Cidr>> cidrs = parse_cidr_list("10.0.0.0/8,fd00::/8");
  ASSERT_TRUE(cidrs.ok());
  EXPECT_EQ(cidrs->size(), 2u);
  Result<std::vector<Cidr>> bad = parse_cidr_list("10.0.0.0/8,300.0.0.1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'300.0.0.1'"), std::string::npos) << bad.error().message;
}

// What iptables-nft-save -t nat printed after an install next to somebody else's rules.
constexpr const char* kSaved =
    "# Generated by iptables-nft-save v1.8.9 (nf_tables) on Sun Dec  6 17:24:07 2026\n"
    "*nat\n"
    ":PREROUTING ACCEPT [0:0]\n"
    ":INPUT ACCEPT [0:0]\n"
    ":OUTPUT ACCEPT [0:0]\n"
    ":POSTROUTING ACCEPT [0:0]\n"
    ":KUBE-SERVICES - [0:0]\n"
    ":H2MESH_OUTPUT - [0:0]\n"
    ":H2MESH_REDIRECT - [0:0]\n"
    "-A OUTPUT -p tcp -j H2MESH_OUTPUT\n"
    "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    "-A OUTPUT -p tcp -j H2MESH_OUTPUT\n"
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"default/kubernetes:https "
    "-j H2MESH_OUTPUT\" -j RETURN\n"
    "-A H2MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
    "-A H2MESH_OUTPUT -j H2MESH_REDIRECT\n"
    "-A H2MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
    "COMMIT\n"
    "# Completed on Sun Dec  6 17:24:07 2026\n"
    "*filter\n"
    ":H2MESH_ELSEWHERE - [0:0]\n"
    "-A INPUT -j H2MESH_ELSEWHERE\n"
    "COMMIT\n";

TEST(ParseNatRules, FindsOurChainsAndHooksOnly) {
  NatRules r = parse_nat_rules(kSaved);
  EXPECT_EQ(r.chains, (std::vector<std::string>{"H2MESH_OUTPUT", "H2MESH_REDIRECT"}));
  // A duplicated hook is seen twice; a comment that merely mentions our chain is not a hook.
  EXPECT_EQ(r.hooks, (std::vector<Rule>{{"OUTPUT", "-p tcp -j H2MESH_OUTPUT"},
                                        {"OUTPUT", "-p tcp -j H2MESH_OUTPUT"}}));
  EXPECT_EQ(r.rules,
            (std::vector<Rule>{{"H2MESH_OUTPUT", "-m owner --uid-owner 1337 -j RETURN"},
                               {"H2MESH_OUTPUT", "-j H2MESH_REDIRECT"},
                               {"H2MESH_REDIRECT", "-p tcp -j REDIRECT --to-ports 15001"}}));
  EXPECT_TRUE(parse_nat_rules("*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n").empty());
  EXPECT_TRUE(parse_nat_rules("").empty());
}

TEST(ParseNatRules, ReadsBackWhatFormatRulesWrites) {
  NatRules want = interception_rules({}, Family::V4);
  EXPECT_EQ(parse_nat_rules("*nat\n" + format_rules(want) + "COMMIT\n"), want);
}

TEST(RestoreInput, ReinstallKeepsOneHookAndReplacesTheChains) {
  InterceptionOptions o;
  o.outbound_port = 15002;
  const std::string expected =
      "*nat\n"
      ":H2MESH_OUTPUT - [0:0]\n"
      ":H2MESH_REDIRECT - [0:0]\n"
      "-A H2MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
      "-A H2MESH_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
      "-A H2MESH_OUTPUT -d 127.0.0.0/8 -j RETURN\n"
      "-A H2MESH_OUTPUT -o lo -j RETURN\n"
      "-A H2MESH_OUTPUT -p tcp -m tcp --dport 9901 -j RETURN\n"
      "-A H2MESH_OUTPUT -j H2MESH_REDIRECT\n"
      "-A H2MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15002\n"
      "-D OUTPUT -p tcp -j H2MESH_OUTPUT\n"  // the duplicate; the other one stays where it is
      "COMMIT\n";
  EXPECT_EQ(restore_input(parse_nat_rules(kSaved), interception_rules(o, Family::V4)), expected);
}

TEST(RestoreInput, UninstallEmptiesThenDeletesEveryChainOfOurs) {
  NatRules installed = parse_nat_rules(kSaved);
  installed.chains.push_back("H2MESH_INBOUND");  // e.g. from a later version
  const std::string expected =
      "*nat\n"
      ":H2MESH_OUTPUT - [0:0]\n"
      ":H2MESH_REDIRECT - [0:0]\n"
      ":H2MESH_INBOUND - [0:0]\n"
      "-D OUTPUT -p tcp -j H2MESH_OUTPUT\n"
      "-D OUTPUT -p tcp -j H2MESH_OUTPUT\n"
      "-X H2MESH_OUTPUT\n"
      "-X H2MESH_REDIRECT\n"
      "-X H2MESH_INBOUND\n"
      "COMMIT\n";
  EXPECT_EQ(restore_input(installed, {}), expected);
  EXPECT_EQ(restore_input({}, {}), "") << "nothing installed: nothing to run";
}

TEST(RestoreInput, RollbackRestoresThePreviousRules) {
  // Install over an older install, then undo it: the old rules come back verbatim.
  NatRules before = parse_nat_rules(kSaved);
  NatRules now = interception_rules({}, Family::V4);
  const std::string text = restore_input(now, before);
  EXPECT_NE(text.find("-A H2MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
                      "-A H2MESH_OUTPUT -j H2MESH_REDIRECT\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("-I OUTPUT 1 -p tcp -j H2MESH_OUTPUT\n"), std::string::npos)
      << "the second copy of the hook comes back too:\n"
      << text;
  EXPECT_EQ(text.find("-X"), std::string::npos) << text;
  EXPECT_EQ(text.find("-D"), std::string::npos) << text;
}

}  // namespace
}  // namespace h2mesh::mesh
