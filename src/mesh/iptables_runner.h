#pragma once

// Runs the real iptables binaries (fork/exec, no shell) to read and change h2mesh's part of the
// nat table, one family at a time, each change one iptables-restore --noflush transaction.
// Called from the command line only (`h2mesh iptables`), on the main thread; blocks.

#include <string>
#include <vector>

#include "common/result.h"
#include "mesh/iptables.h"

namespace h2mesh::mesh {

// iptables-nft (nf_tables, Debian 12's `iptables`) or iptables-legacy (x_tables). Both can hold
// rules in one namespace at the same time, and then both apply: h2mesh writes to one only.
enum class Backend { Auto, Nft, Legacy };
enum class Ipv6Mode { Auto, On, Off };

const char* backend_name(Backend backend);  // "auto", "nft", "legacy"
const char* family_name(Family family);     // "IPv4", "IPv6"
// "iptables-nft", "ip6tables-legacy", ...; with Auto, the generic "iptables" / "ip6tables".
std::string tool_base(Family family, Backend backend);

// /proc/net/if_inet6 exists.
bool kernel_has_ipv6();
// CAP_NET_ADMIN is in this process's effective set (netfilter refuses changes without it).
bool has_net_admin();

// The families `mode` asks for: IPv4, and IPv6 when on, or when auto and the kernel has it. An
// error for `on` without IPv6 in the kernel.
Result<std::vector<Family>> families_for(Ipv6Mode mode);

// The binaries of one backend.
class IptablesRunner {
 public:
  // `backend`: Nft or Legacy.
  explicit IptablesRunner(Backend backend) : backend_(backend) {}

  // Which backend already holds rules in this namespace for `families`: the one with h2mesh's
  // chains, else the one with more rules (the node's, kube-proxy's), else nft. Runs the save
  // binaries of both; one that is missing or fails counts as holding nothing, except when it
  // was refused for lack of permission (ErrorCode::PermissionDenied).
  static Result<Backend> detect(const std::vector<Family>& families);

  Backend backend() const { return backend_; }

  // An error naming the first of the binaries for `families` that is not in $PATH.
  Result<void> check_installed(const std::vector<Family>& families) const;
  // h2mesh's part of the family's nat table (iptables-save -t nat).
  Result<NatRules> read(Family family) const;
  // Runs iptables-restore --noflush with `input`: all of it or, on error, nothing.
  Result<void> apply(Family family, const std::string& input) const;

 private:
  Backend backend_;
};

}  // namespace h2mesh::mesh
