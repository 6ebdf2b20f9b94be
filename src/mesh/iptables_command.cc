#include "mesh/iptables_command.h"

#include <charconv>
#include <cstdio>
#include <string_view>

#include "config/parser.h"

namespace h2mesh::mesh {
namespace {

constexpr const char* kWhere = "h2mesh iptables";

constexpr const char* kUsage =
    "usage: h2mesh iptables install|uninstall|show [FLAGS]\n"
    "  Interception for mesh mode: the pod's outbound TCP goes to the sidecar's outbound\n"
    "  port (nat chains H2MESH_OUTPUT and H2MESH_REDIRECT, hooked from OUTPUT); with\n"
    "  --inbound-port, TCP arriving at the pod goes to its inbound port (H2MESH_INBOUND).\n"
    "  Needs CAP_NET_ADMIN (root, or an init container with NET_ADMIN and NET_RAW).\n"
    "\n"
    "  install      create or replace the rules (one iptables-restore transaction per family;\n"
    "               installing twice is installing once)\n"
    "  uninstall    remove the hooks and every H2MESH_ chain; nothing else is touched\n"
    "  show         print the rules as installed\n"
    "\n"
    "flags:\n"
    "  --dry-run                      print the iptables-restore input, run nothing\n"
    "  --backend auto|nft|legacy      auto (default): the one that holds rules, else nft\n"
    "  --ipv6 auto|on|off             auto (default): also ip6tables when the kernel has IPv6\n"
    "install only:\n"
    "  --proxy-uid UID                the sidecar's uid, never redirected (default 1337)\n"
    "  --proxy-gid GID                the sidecar's gid, never redirected (default: the uid)\n"
    "  --outbound-port PORT           where outbound TCP goes (default 15001)\n"
    "  --admin-port PORT              never redirected; 0: no such rule (default 9901)\n"
    "  --skip-outbound-ports P,P..    destination ports never redirected\n"
    "  --skip-outbound-cidrs C,C..    destinations never redirected (IPv4 and IPv6)\n"
    "  --include-outbound-cidrs C,C.. redirect only these destinations\n"
    "  --inbound-port PORT            also redirect TCP arriving at the pod (nat PREROUTING,\n"
    "                                 chains H2MESH_INBOUND and H2MESH_IN_REDIRECT) to this\n"
    "                                 port: the sidecar's inbound listener, mesh mTLS (15006)\n"
    "  --skip-inbound-ports P,P..     with --inbound-port: ports arriving at the pod untouched\n"
    "\n"
    "exit codes: 0 done, 1 failed (a failed install changes nothing), 2 usage error,\n"
    "3 not permitted\n";

struct Flag {
  std::string_view name;
  bool takes_value;
  bool install_only;
};

constexpr Flag kFlags[] = {
    {"--dry-run", false, false},
    {"--backend", true, false},
    {"--ipv6", true, false},
    {"--proxy-uid", true, true},
    {"--proxy-gid", true, true},
    {"--outbound-port", true, true},
    {"--admin-port", true, true},
    {"--skip-outbound-ports", true, true},
    {"--skip-outbound-cidrs", true, true},
    {"--include-outbound-cidrs", true, true},
    {"--inbound-port", true, true},
    {"--skip-inbound-ports", true, true},
};

Error usage(std::string message, std::string_view typed = {},
            const std::vector<std::string_view>& known = {}) {
  if (!typed.empty()) {
    std::string meant = config::likely_meant(typed, known);
    if (!meant.empty()) message += " (did you mean " + meant + "?)";
  }
  return make_error(ErrorCode::InvalidArgument, std::move(message));
}

// The value of `flag`, one of `choices`, as an index (the choices are listed in the order of
// the enum the index is cast to).
Result<size_t> choice(std::string_view flag, const std::string& value,
                      const std::vector<std::string_view>& choices) {
  for (size_t i = 0; i < choices.size(); ++i)
    if (value == choices[i]) return i;
  return usage(std::string(flag) + ": unknown value '" + value + "'", value, choices);
}

Result<uint32_t> parse_id(std::string_view flag, const std::string& value) {
  uint32_t id = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
  // (uid_t)-1 is "no change" to the kernel, never a process's id.
  if (ec != std::errc() || end != value.data() + value.size() || id == UINT32_MAX)
    return usage(std::string(flag) + ": invalid id '" + value + "': expected 0..4294967294");
  return id;
}

// Applies one flag's value to `r`; errors name the flag.
Result<void> apply_flag(std::string_view name, const std::string& value, IptablesRequest* r) {
  InterceptionOptions& o = r->options;
  auto named = [&](const Error& e) { return usage(std::string(name) + ": " + e.message); };
  if (name == "--backend") {
    Result<size_t> i = choice(name, value, {"auto", "nft", "legacy"});
    if (!i.ok()) return i.error();
    r->backend = static_cast<Backend>(*i);
  } else if (name == "--ipv6") {
    Result<size_t> i = choice(name, value, {"auto", "on", "off"});
    if (!i.ok()) return i.error();
    r->ipv6 = static_cast<Ipv6Mode>(*i);
  } else if (name == "--proxy-uid" || name == "--proxy-gid") {
    Result<uint32_t> id = parse_id(name, value);
    if (!id.ok()) return id.error();
    (name == "--proxy-uid" ? o.proxy_uid : o.proxy_gid) = *id;
  } else if (name == "--outbound-port") {
    Result<uint16_t> port = parse_port(value);
    if (!port.ok()) return named(port.error());
    o.outbound_port = *port;
  } else if (name == "--admin-port") {
    if (value == "0") {
      o.admin_port = 0;
    } else {
      Result<uint16_t> port = parse_port(value);
      if (!port.ok()) return named(port.error());
      o.admin_port = *port;
    }
  } else if (name == "--inbound-port") {
    Result<uint16_t> port = parse_port(value);
    if (!port.ok()) return named(port.error());
    o.inbound_port = *port;
  } else if (name == "--skip-outbound-ports" || name == "--skip-inbound-ports") {
    Result<std::vector<uint16_t>> ports = parse_port_list(value);
    if (!ports.ok()) return named(ports.error());
    (name == "--skip-outbound-ports" ? o.skip_outbound_ports : o.skip_inbound_ports) = *ports;
  } else {
    Result<std::vector<Cidr>> cidrs = parse_cidr_list(value);
    if (!cidrs.ok()) return named(cidrs.error());
    (name == "--skip-outbound-cidrs" ? o.skip_outbound_cidrs : o.include_outbound_cidrs) = *cidrs;
  }
  return {};
}

std::string label(Family family, Backend backend) {
  return std::string(family_name(family)) + " (" + tool_base(family, backend) + ")";
}

// An error on stderr; its exit code.
int report(const Error& error) {
  fprintf(stderr, "%s: %s\n", kWhere, error.message.c_str());
  return error.code == ErrorCode::PermissionDenied ? kExitNotPermitted : kExitFailed;
}

int install(const IptablesRequest& request, const IptablesRunner& runner,
            const std::vector<Family>& families) {
  std::vector<NatRules> before;
  for (Family f : families) {
    Result<NatRules> rules = runner.read(f);
    if (!rules.ok()) return report(rules.error());
    before.push_back(std::move(*rules));
  }
  for (size_t i = 0; i < families.size(); ++i) {
    const NatRules want = interception_rules(request.options, families[i]);
    Result<void> applied = runner.apply(families[i], restore_input(before[i], want));
    if (applied.ok()) continue;
    // Half a mesh is worse than none: IPv6 clients would bypass the sidecar (or IPv4 ones),
    // so the families already done go back to what they were.
    std::string message =
        label(families[i], runner.backend()) + ": install failed: " + applied.error().message;
    for (size_t j = 0; j < i; ++j) {
      Result<void> undone = runner.apply(
          families[j], restore_input(interception_rules(request.options, families[j]), before[j]));
      message += "\n" + label(families[j], runner.backend()) +
                 (undone.ok() ? ": rolled back, as it was before"
                              : ": rolling back failed too: " + undone.error().message +
                                    "\n  run 'h2mesh iptables uninstall' to remove the rest");
    }
    if (families[i] == Family::V6) message += "\nWithout IPv6 in this pod: --ipv6 off";
    return report(make_error(applied.error().code, message));
  }
  for (size_t i = 0; i < families.size(); ++i)
    printf("%s: %s: outbound TCP redirected to port %u%s\n",
           label(families[i], runner.backend()).c_str(),
           before[i].empty() ? "installed" : "replaced the rules that were installed",
           static_cast<unsigned>(request.options.outbound_port),
           request.options.inbound_port == 0
               ? ""
               : (", inbound TCP to port " + std::to_string(request.options.inbound_port))
                     .c_str());
  return 0;
}

int uninstall(const IptablesRunner& runner, const std::vector<Family>& families) {
  std::vector<NatRules> before;
  bool any = false;
  for (Family f : families) {
    Result<NatRules> rules = runner.read(f);
    if (!rules.ok()) return report(rules.error());
    any = any || !rules->empty();
    before.push_back(std::move(*rules));
  }
  if (!any) {
    printf("%s: not installed (%s, %s): nothing to remove\n", kWhere,
           backend_name(runner.backend()), families.size() == 2 ? "IPv4 and IPv6" : "IPv4");
    return 0;
  }
  for (size_t i = 0; i < families.size(); ++i) {
    const std::string name = label(families[i], runner.backend());
    if (before[i].empty()) {
      printf("%s: not installed\n", name.c_str());
      continue;
    }
    Result<void> applied = runner.apply(families[i], restore_input(before[i], NatRules{}));
    // Not rolled back: rules left over are what uninstall is for, so running it again (once the
    // cause is fixed) finishes the job.
    if (!applied.ok())
      return report(make_error(applied.error().code,
                               name + ": uninstall failed: " + applied.error().message +
                                   (i > 0 ? "\n(the families above were removed)" : "")));
    printf("%s: removed\n", name.c_str());
  }
  return 0;
}

int show(const IptablesRunner& runner, const std::vector<Family>& families) {
  for (Family f : families) {
    Result<NatRules> rules = runner.read(f);
    if (!rules.ok()) return report(rules.error());
    printf("# %s\n%s", label(f, runner.backend()).c_str(),
           rules->empty() ? "not installed\n" : format_rules(*rules).c_str());
  }
  return 0;
}

}  // namespace

Result<IptablesRequest> parse_iptables_args(const std::vector<std::string>& args) {
  static const std::vector<std::string_view> kActions = {"install", "uninstall", "show"};
  std::vector<std::string_view> known;
  for (const Flag& f : kFlags) known.push_back(f.name);
  known.push_back("--help");

  IptablesRequest r;
  bool have_action = false;
  std::vector<std::string_view> seen;
  std::vector<std::pair<std::string_view, std::string>> values;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (!arg.starts_with("-")) {
      if (have_action) return usage("unexpected argument '" + std::string(arg) + "'");
      for (size_t a = 0; a < kActions.size() && !have_action; ++a) {
        have_action = arg == kActions[a];
        r.action = static_cast<IptablesAction>(a);  // kActions is in IptablesAction's order
      }
      if (!have_action) return usage("unknown action '" + std::string(arg) + "'", arg, kActions);
      continue;
    }
    std::string_view name = arg.substr(0, arg.find('='));
    const Flag* flag = nullptr;
    for (const Flag& f : kFlags)
      if (f.name == name) flag = &f;
    if (!flag) return usage("unknown flag '" + std::string(name) + "'", name, known);
    for (std::string_view s : seen)
      if (s == flag->name) return usage(std::string(name) + " is given twice");
    seen.push_back(flag->name);
    if (!flag->takes_value) {
      if (name.size() < arg.size()) return usage(std::string(name) + " takes no value");
      r.dry_run = true;
      continue;
    }
    std::string value;
    if (name.size() < arg.size()) {
      value = std::string(arg.substr(name.size() + 1));  // --flag=value
    } else if (i + 1 < args.size() && !std::string_view(args[i + 1]).starts_with("--")) {
      value = args[++i];
    }
    if (value.empty()) return usage(std::string(name) + " needs a value");
    values.emplace_back(flag->name, std::move(value));
  }
  if (!have_action) return usage("an action is required: install, uninstall or show");

  bool gid_given = false;
  for (const auto& [name, value] : values) {
    const Flag* flag = nullptr;
    for (const Flag& f : kFlags)
      if (f.name == name) flag = &f;
    if (flag->install_only && r.action != IptablesAction::Install)
      return usage(std::string(name) + " is for install only (uninstall removes every H2MESH_ " +
                   "chain, whatever it was installed with)");
    Result<void> applied = apply_flag(name, value, &r);
    if (!applied.ok()) return applied.error();
    gid_given = gid_given || name == "--proxy-gid";
  }
  if (!gid_given) r.options.proxy_gid = r.options.proxy_uid;
  if (!r.options.skip_inbound_ports.empty() && r.options.inbound_port == 0)
    return usage("--skip-inbound-ports needs --inbound-port (without it nothing inbound is "
                 "redirected)");
  if (r.options.inbound_port != 0 && r.options.inbound_port == r.options.outbound_port)
    return usage("--inbound-port and --outbound-port must differ");
  if (r.dry_run && r.action == IptablesAction::Show)
    return usage("--dry-run is for install and uninstall (show changes nothing)");
  return r;
}

std::string dry_run_text(const IptablesRequest& request, const std::vector<Family>& families) {
  std::string text;
  for (Family f : families) {
    NatRules want = interception_rules(request.options, f);
    text += "# " + std::string(family_name(f)) + ": " + tool_base(f, request.backend) +
            "-restore --noflush\n";
    text += request.action == IptablesAction::Install ? restore_input({}, want)
                                                      : restore_input(want, {});
  }
  return text;
}

int iptables_main(const std::vector<std::string>& args) {
  for (const std::string& a : args)
    if (a == "--help" || a == "-h") {
      fputs(kUsage, stdout);
      return 0;
    }
  Result<IptablesRequest> request = parse_iptables_args(args);
  if (!request.ok()) {
    fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", kWhere, request.error().message.c_str(),
            kWhere);
    return kExitUsage;
  }
  Result<std::vector<Family>> families = families_for(request->ipv6);
  if (!families.ok()) return report(families.error());
  if (request->dry_run) {
    fputs(dry_run_text(*request, *families).c_str(), stdout);
    return 0;
  }
  // Checked before any binary runs: their own messages for this are cryptic ("Could not fetch
  // rule set generation id").
  if (!has_net_admin())
    return report(make_error(
        ErrorCode::PermissionDenied,
        std::string("not permitted: ") +
            (request->action == IptablesAction::Show ? "reading" : "changing") +
            " the nat table needs CAP_NET_ADMIN: run it as root, or in an init container with "
            "the capabilities NET_ADMIN and NET_RAW"));
  Backend backend = request->backend;
  if (backend == Backend::Auto) {
    Result<Backend> detected = IptablesRunner::detect(*families);
    if (!detected.ok()) return report(detected.error());
    backend = *detected;
  }
  IptablesRunner runner(backend);
  if (Result<void> installed = runner.check_installed(*families); !installed.ok())
    return report(installed.error());
  switch (request->action) {
    case IptablesAction::Install: return install(*request, runner, *families);
    case IptablesAction::Uninstall: return uninstall(runner, *families);
    case IptablesAction::Show: return show(runner, *families);
  }
  return kExitFailed;
}

}  // namespace h2mesh::mesh
