#include "mesh/iptables_runner.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "common/subprocess.h"

namespace h2mesh::mesh {
namespace {

// The legacy binaries wait this long for the xtables lock another iptables process holds
// (kube-proxy on a node); the nft ones take the flag and ignore it.
constexpr const char* kLockWaitSeconds = "10";

bool refused_for_permission(const CommandOutput& out) {
  return out.err.find("Permission denied") != std::string::npos ||
         out.err.find("you must be root") != std::string::npos;
}

// iptables-restore names the input line it refused ("line 3 failed", "Error occurred at
// line: 3"); the line itself says more to the user than its number.
std::string failed_line(const std::string& err, const std::string& input) {
  int number = 0;
  for (const char* marker : {"line: ", "line "}) {
    size_t at = err.find(marker);
    if (at == std::string::npos) continue;
    const char* begin = err.data() + at + std::char_traits<char>::length(marker);
    std::from_chars(begin, err.data() + err.size(), number);
    if (number > 0) break;
  }
  size_t start = 0;
  for (int i = 1; i < number && start != std::string::npos; ++i) {
    start = input.find('\n', start);
    if (start != std::string::npos) ++start;
  }
  if (number <= 0 || start == std::string::npos || start >= input.size()) return "";
  return input.substr(start, input.find('\n', start) - start);
}

std::string first_lines(const std::string& text) {
  std::string out = text;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out.empty() ? "(no message)" : out;
}

Error tool_failed(const std::string& tool, const CommandOutput& out, const std::string& input) {
  if (refused_for_permission(out))
    return make_error(ErrorCode::PermissionDenied,
                      tool + " was refused: " + first_lines(out.err) +
                          "\n(changing netfilter rules needs CAP_NET_ADMIN in this network "
                          "namespace's user namespace)");
  std::string message =
      tool + " failed (exit code " + std::to_string(out.exit_code) + "): " + first_lines(out.err);
  std::string line = failed_line(out.err, input);
  if (!line.empty()) message += "\n  the refused line: " + line;
  return make_error(ErrorCode::Io, message);
}

Error not_found(const std::string& tool) {
  return make_error(ErrorCode::Io, tool + " not found: install the iptables package");
}

// What one save binary shows for backend detection.
struct Holding {
  int rules = 0;
  bool ours = false;
};

Result<Holding> holding(Family family, Backend backend) {
  const std::string tool = tool_base(family, backend) + "-save";
  const std::string path = find_executable(tool);
  if (path.empty()) return Holding{};
  // Every table that exists, not just nat: the node's rules may be in filter or mangle. Without
  // -t, a legacy save lists the tables the kernel has and loads none.
  Result<CommandOutput> out = run_command({path});
  if (!out.ok()) return Holding{};
  if (out->exit_code != 0) {
    if (refused_for_permission(*out)) return tool_failed(tool, *out, "");
    return Holding{};
  }
  Holding h;
  std::string_view text = out->out;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    std::string_view line = text.substr(at, nl == std::string_view::npos ? nl : nl - at);
    if (line.starts_with("-A ")) ++h.rules;
    if (line.starts_with(":") && line.substr(1).starts_with(kChainPrefix)) h.ours = true;
    at = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  return h;
}

}  // namespace

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::Auto: return "auto";
    case Backend::Nft: return "nft";
    case Backend::Legacy: return "legacy";
  }
  return "?";
}

const char* family_name(Family family) { return family == Family::V4 ? "IPv4" : "IPv6"; }

std::string tool_base(Family family, Backend backend) {
  std::string base = family == Family::V4 ? "iptables" : "ip6tables";
  if (backend != Backend::Auto) base += std::string("-") + backend_name(backend);
  return base;
}

bool kernel_has_ipv6() { return access("/proc/net/if_inet6", F_OK) == 0; }

bool has_net_admin() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  // Unknown (a kernel that refuses capget): let the binaries say whether they may.
  if (syscall(SYS_capget, &header, data) != 0) return true;
  return (data[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32))) != 0;
}

Result<std::vector<Family>> families_for(Ipv6Mode mode) {
  std::vector<Family> families = {Family::V4};
  bool ipv6 = kernel_has_ipv6();
  if (mode == Ipv6Mode::On && !ipv6)
    return make_error(ErrorCode::InvalidArgument,
                      "--ipv6 on, but this kernel has no IPv6 (/proc/net/if_inet6 is missing)");
  if (mode == Ipv6Mode::On || (mode == Ipv6Mode::Auto && ipv6)) families.push_back(Family::V6);
  return families;
}

Result<Backend> IptablesRunner::detect(const std::vector<Family>& families) {
  Holding total[2];
  const Backend backends[2] = {Backend::Nft, Backend::Legacy};
  for (int b = 0; b < 2; ++b) {
    for (Family f : families) {
      Result<Holding> h = holding(f, backends[b]);
      if (!h.ok()) return h.error();
      total[b].rules += h->rules;
      total[b].ours = total[b].ours || h->ours;
    }
  }
  if (total[0].ours != total[1].ours) return total[0].ours ? Backend::Nft : Backend::Legacy;
  return total[1].rules > total[0].rules ? Backend::Legacy : Backend::Nft;
}

Result<void> IptablesRunner::check_installed(const std::vector<Family>& families) const {
  for (Family f : families)
    for (const char* suffix : {"-restore", "-save"}) {
      std::string tool = tool_base(f, backend_) + suffix;
      if (find_executable(tool).empty()) return not_found(tool);
    }
  return {};
}

Result<NatRules> IptablesRunner::read(Family family) const {
  const std::string tool = tool_base(family, backend_) + "-save";
  const std::string path = find_executable(tool);
  if (path.empty()) return not_found(tool);
  Result<CommandOutput> out = run_command({path, "-t", "nat"});
  if (!out.ok()) return make_error(ErrorCode::Io, tool + ": " + out.error().message);
  if (out->exit_code != 0) return tool_failed(tool, *out, "");
  return parse_nat_rules(out->out);
}

Result<void> IptablesRunner::apply(Family family, const std::string& input) const {
  const std::string tool = tool_base(family, backend_) + "-restore";
  const std::string path = find_executable(tool);
  if (path.empty()) return not_found(tool);
  Result<CommandOutput> out = run_command({path, "--noflush", "--wait", kLockWaitSeconds}, input);
  if (!out.ok()) return make_error(ErrorCode::Io, tool + ": " + out.error().message);
  if (out->exit_code != 0) return tool_failed(tool, *out, input);
  return {};
}

}  // namespace h2mesh::mesh
