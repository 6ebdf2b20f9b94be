#pragma once

// The interception rules of mesh mode as data: what `h2mesh iptables install` wants in the nat
// table, what iptables-save says is there, and the iptables-restore input that turns one into
// the other. Pure functions, no I/O: iptables_runner.h runs the binaries.
//
// h2mesh owns every nat chain whose name starts with "H2MESH_" (kChainPrefix). Anything else in
// the table belongs to somebody else (the node, kube-proxy, the user) and is never changed; the
// only rules h2mesh adds outside its chains are the hooks that jump into them.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace h2mesh::mesh {

enum class Family { V4, V6 };

inline constexpr std::string_view kChainPrefix = "H2MESH_";
inline constexpr std::string_view kOutputChain = "H2MESH_OUTPUT";
inline constexpr std::string_view kRedirectChain = "H2MESH_REDIRECT";
inline constexpr std::string_view kInboundChain = "H2MESH_INBOUND";
inline constexpr std::string_view kInboundRedirectChain = "H2MESH_IN_REDIRECT";

// An address range, its host bits cleared (10.1.2.3/24 is 10.1.2.0/24, as iptables stores it).
struct Cidr {
  Family family = Family::V4;
  std::array<uint8_t, 16> address{};  // network byte order; the first 4 bytes for IPv4
  int prefix = 0;

  // As iptables-save prints it: "10.1.2.0/24", "fd00::/8".
  std::string to_string() const;
  bool operator==(const Cidr&) const = default;
};

// "10.0.0.0/8", "fd00::/8", or a bare address (a /32 or /128).
Result<Cidr> parse_cidr(std::string_view text);
// A TCP port 1..65535.
Result<uint16_t> parse_port(std::string_view text);
// Comma-separated lists of the above; an empty item is an error.
Result<std::vector<Cidr>> parse_cidr_list(std::string_view text);
Result<std::vector<uint16_t>> parse_port_list(std::string_view text);

// What `h2mesh iptables install` intercepts. Defaults: the conventions mesh users know (Istio's
// proxy uid 1337 and outbound port 15001) and h2mesh's own admin port.
struct InterceptionOptions {
  uint32_t proxy_uid = 1337;
  uint32_t proxy_gid = 1337;
  uint16_t outbound_port = 15001;
  uint16_t admin_port = 9901;  // 0: no rule for it
  std::vector<uint16_t> skip_outbound_ports;
  std::vector<Cidr> skip_outbound_cidrs;     // both families; each goes to its own
  std::vector<Cidr> include_outbound_cidrs;  // empty: every destination not skipped
  // Inbound: TCP arriving at the pod goes to the sidecar's inbound listener (mesh mTLS). 0: no
  // inbound interception (the PREROUTING hook and its chains are not installed).
  uint16_t inbound_port = 0;
  std::vector<uint16_t> skip_inbound_ports;
};

// One rule as iptables-save prints it, "-A <chain> <spec>".
struct Rule {
  std::string chain;
  std::string spec;
  bool operator==(const Rule&) const = default;
};

// h2mesh's part of one family's nat table.
struct NatRules {
  std::vector<std::string> chains;  // ours, in the order they are declared
  std::vector<Rule> rules;          // the rules in our chains, in order
  std::vector<Rule> hooks;          // rules in other chains that jump into ours

  bool empty() const { return chains.empty() && rules.empty() && hooks.empty(); }
  bool operator==(const NatRules&) const = default;
};

// The rules `install` wants for `family`: the outbound side (OUTPUT → H2MESH_OUTPUT →
// H2MESH_REDIRECT → outbound_port) and, when inbound_port is set, the inbound side
// (PREROUTING → H2MESH_INBOUND → H2MESH_IN_REDIRECT → inbound_port).
NatRules interception_rules(const InterceptionOptions& options, Family family);

// Our part of the nat table in iptables-save output (`iptables-save -t nat`, or a whole save:
// only the *nat section is read).
NatRules parse_nat_rules(std::string_view save_output);

// The iptables-restore input (for --noflush: it names only our chains and hooks) that changes
// the table from `from` to `to` in one transaction. Every chain of either side is declared,
// which creates or empties it; `to`'s rules are added; hooks only in `from` are deleted, hooks
// only in `to` are inserted first in their chain (ahead of any other NAT rule, which could
// otherwise rewrite the destination before the sidecar sees it); chains only in `from` are
// deleted last. "" when both are empty: there is nothing to do.
std::string restore_input(const NatRules& from, const NatRules& to);

// The rules in iptables-save form (declarations, hooks, then the rules of our chains), for
// `show`.
std::string format_rules(const NatRules& rules);

}  // namespace h2mesh::mesh
