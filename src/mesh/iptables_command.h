#pragma once

// `h2mesh iptables install|uninstall|show`: the command line of the interception rules (an
// init container runs it once per pod, as root). Main thread only.

#include <string>
#include <vector>

#include "common/result.h"
#include "mesh/iptables.h"
#include "mesh/iptables_runner.h"

namespace h2mesh::mesh {

enum class IptablesAction { Install, Uninstall, Show };

struct IptablesRequest {
  IptablesAction action = IptablesAction::Show;
  InterceptionOptions options;  // install only
  Backend backend = Backend::Auto;
  Ipv6Mode ipv6 = Ipv6Mode::Auto;
  bool dry_run = false;  // install and uninstall
};

// Exit codes besides 0. 2 is every h2mesh command's code for a command-line mistake.
inline constexpr int kExitFailed = 1;        // a binary is missing or failed
inline constexpr int kExitUsage = 2;         // a mistake on the command line
inline constexpr int kExitNotPermitted = 3;  // no CAP_NET_ADMIN

// Reads the words after "iptables". An error (InvalidArgument) is the message for the user,
// with a "did you mean" hint when a known word is close.
Result<IptablesRequest> parse_iptables_args(const std::vector<std::string>& args);

// What --dry-run prints: for each family, a comment naming the binary, then its exact
// iptables-restore input for a namespace where nothing of h2mesh's is installed (install) or
// where an install ran (uninstall: the same whatever flags that install had, since it names
// only chains and hooks). Runs nothing.
std::string dry_run_text(const IptablesRequest& request, const std::vector<Family>& families);

// The whole command: `args` are the words after "iptables". Prints results on stdout and
// errors on stderr; returns the exit code.
int iptables_main(const std::vector<std::string>& args);

}  // namespace h2mesh::mesh
