// `h2mesh iptables` command-line reading: every flag reaches the options, every mistake is an
// error naming it (the CLI turns those into exit code 2), and --dry-run text.

#include "mesh/iptables_command.h"

#include <gtest/gtest.h>

namespace h2mesh::mesh {
namespace {

Result<IptablesRequest> parse(std::vector<std::string> args) { return parse_iptables_args(args); }

std::string error_of(std::vector<std::string> args) {
  Result<IptablesRequest> r = parse_iptables_args(args);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
  return r.error().message;
}

TEST(IptablesArgs, DefaultsAreTheMeshConventions) {
  Result<IptablesRequest> r = parse({"install"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->action, IptablesAction::Install);
  EXPECT_EQ(r->options.proxy_uid, 1337u);
  EXPECT_EQ(r->options.proxy_gid, 1337u);
  EXPECT_EQ(r->options.outbound_port, 15001);
  EXPECT_EQ(r->options.admin_port, 9901);
  EXPECT_EQ(r->backend, Backend::Auto);
  EXPECT_EQ(r->ipv6, Ipv6Mode::Auto);
  EXPECT_FALSE(r->dry_run);
}

TEST(IptablesArgs, EveryFlagIsRead) {
  Result<IptablesRequest> r = parse(
      {"--dry-run", "install", "--proxy-uid", "2102", "--outbound-port=4140", "--admin-port", "0",
       "--skip-outbound-ports", "25,3306", "--skip-outbound-cidrs", "10.0.0.0/8,fd00::/8",
       "--include-outbound-cidrs=10.96.0.0/12", "--ipv6", "off", "--backend", "legacy"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->dry_run);
  EXPECT_EQ(r->options.proxy_uid, 2102u);
  EXPECT_EQ(r->options.proxy_gid, 2102u) << "the gid defaults to the uid";
  EXPECT_EQ(r->options.outbound_port, 4140);
  EXPECT_EQ(r->options.admin_port, 0);
  EXPECT_EQ(r->options.skip_outbound_ports, (std::vector<uint16_t>{25, 3306}));
  ASSERT_EQ(r->options.skip_outbound_cidrs.size(), 2u);
  EXPECT_EQ(r->options.skip_outbound_cidrs[1].to_string(), "fd00::/8");
  ASSERT_EQ(r->options.include_outbound_cidrs.size(), 1u);
  EXPECT_EQ(r->ipv6, Ipv6Mode::Off);
  EXPECT_EQ(r->backend, Backend::Legacy);
  EXPECT_EQ(r->options.inbound_port, 0) << "no inbound interception unless asked";

  r = parse({"install", "--inbound-port", "15006", "--skip-inbound-ports=8443,9000"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->options.inbound_port, 15006);
  EXPECT_EQ(r->options.skip_inbound_ports, (std::vector<uint16_t>{8443, 9000}));
  EXPECT_EQ(error_of({"install", "--skip-inbound-ports", "80"}),
            "--skip-inbound-ports needs --inbound-port (without it nothing inbound is redirected)");
  EXPECT_EQ(error_of({"install", "--inbound-port", "15001"}),
            "--inbound-port and --outbound-port must differ");
  EXPECT_EQ(error_of({"install", "--inbound-port", "0"}),
            "--inbound-port: invalid port '0': expected 1..65535");

  r = parse({"install", "--proxy-gid", "0", "--proxy-uid", "1000", "--backend", "nft"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->options.proxy_gid, 0u);
  EXPECT_EQ(r->backend, Backend::Nft);
  r = parse({"uninstall", "--ipv6=on"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->action, IptablesAction::Uninstall);
  EXPECT_EQ(r->ipv6, Ipv6Mode::On);
  r = parse({"show"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->action, IptablesAction::Show);
}

TEST(IptablesArgs, MistakesAreNamed) {
  EXPECT_EQ(error_of({}), "an action is required: install, uninstall or show");
  EXPECT_EQ(error_of({"instal"}), "unknown action 'instal' (did you mean install?)");
  EXPECT_EQ(error_of({"install", "show"}), "unexpected argument 'show'");
  EXPECT_EQ(error_of({"install", "--outbound-prot", "1"}),
            "unknown flag '--outbound-prot' (did you mean --outbound-port?)");
  EXPECT_EQ(error_of({"install", "--outbound-port"}), "--outbound-port needs a value");
  EXPECT_EQ(error_of({"install", "--outbound-port", "--dry-run"}), "--outbound-port needs a value");
  EXPECT_EQ(error_of({"install", "--outbound-port="}), "--outbound-port needs a value");
  EXPECT_EQ(error_of({"install", "--dry-run=yes"}), "--dry-run takes no value");
  EXPECT_EQ(error_of({"install", "--dry-run", "--dry-run"}), "--dry-run is given twice");
  EXPECT_EQ(error_of({"install", "--outbound-port", "0"}),
            "--outbound-port: invalid port '0': expected 1..65535");
  EXPECT_EQ(error_of({"install", "--admin-port", "70000"}),
            "--admin-port: invalid port '70000': expected 1..65535");
  EXPECT_EQ(error_of({"install", "--skip-outbound-cidrs", "10.0.0.0/33"}),
            "--skip-outbound-cidrs: invalid CIDR '10.0.0.0/33': the prefix length must be 0..32");
  EXPECT_EQ(error_of({"install", "--include-outbound-cidrs", "10.0.0.0/8,"}),
            "--include-outbound-cidrs: empty item in the list of CIDRs '10.0.0.0/8,'");
  EXPECT_EQ(error_of({"install", "--skip-outbound-ports", "80,http"}),
            "--skip-outbound-ports: invalid port 'http': expected 1..65535");
  EXPECT_EQ(error_of({"install", "--proxy-uid", "-1"}),
            "--proxy-uid: invalid id '-1': expected 0..4294967294");
  EXPECT_EQ(error_of({"install", "--proxy-gid", "4294967295"}),
            "--proxy-gid: invalid id '4294967295': expected 0..4294967294");
  EXPECT_EQ(error_of({"install", "--backend", "nftables"}),
            "--backend: unknown value 'nftables' (did you mean nft?)");
  EXPECT_EQ(error_of({"install", "--ipv6", "yes"}), "--ipv6: unknown value 'yes'");
  EXPECT_EQ(error_of({"show", "--dry-run"}),
            "--dry-run is for install and uninstall (show changes nothing)");
  EXPECT_NE(error_of({"uninstall", "--outbound-port", "15001"})
                .find("--outbound-port is for install only"),
            std::string::npos);
}

TEST(IptablesDryRun, NamesTheBinaryOfEachFamily) {
  Result<IptablesRequest> r = parse({"install", "--dry-run", "--backend", "legacy"});
  ASSERT_TRUE(r.ok());
  const std::string text = dry_run_text(*r, {Family::V4, Family::V6});
  const size_t v4 = text.find("# IPv4: iptables-legacy-restore --noflush\n*nat\n");
  const size_t v6 = text.find("# IPv6: ip6tables-legacy-restore --noflush\n*nat\n");
  EXPECT_EQ(v4, 0u) << text;
  ASSERT_NE(v6, std::string::npos) << text;
  EXPECT_EQ(text.substr(v6).find("-d ::1/128 -j RETURN"), text.substr(v6).find("-d ::1"));
  EXPECT_EQ(text.find("-I OUTPUT 1 -p tcp -j H2MESH_OUTPUT"), text.find("-I OUTPUT"));

  r = parse({"uninstall", "--dry-run", "--ipv6", "off"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(dry_run_text(*r, {Family::V4}),
            "# IPv4: iptables-restore --noflush\n"
            "*nat\n"
            ":H2MESH_OUTPUT - [0:0]\n"
            ":H2MESH_REDIRECT - [0:0]\n"
            "-D OUTPUT -p tcp -j H2MESH_OUTPUT\n"
            "-X H2MESH_OUTPUT\n"
            "-X H2MESH_REDIRECT\n"
            "COMMIT\n");
}

}  // namespace
}  // namespace h2mesh::mesh
