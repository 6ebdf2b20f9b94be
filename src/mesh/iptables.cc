#include "mesh/iptables.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace h2mesh::mesh {
namespace {

bool is_ours(std::string_view chain) { return chain.starts_with(kChainPrefix); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Splits a rule spec into words the way iptables-restore does: blanks separate, double quotes
// group (a --comment may hold blanks), a backslash escapes the next character inside quotes.
std::vector<std::string> words(std::string_view spec) {
  std::vector<std::string> out;
  std::string word;
  bool in_word = false, quoted = false;
  for (size_t i = 0; i < spec.size(); ++i) {
    char c = spec[i];
    if (quoted) {
      if (c == '\\' && i + 1 < spec.size()) {
        word += spec[++i];
      } else if (c == '"') {
        quoted = false;
      } else {
        word += c;
      }
    } else if (c == '"') {
      quoted = in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) out.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) out.push_back(std::move(word));
  return out;
}

// The chain a rule jumps or goes to, "" for none.
std::string target_of(std::string_view spec) {
  std::vector<std::string> w = words(spec);
  for (size_t i = 0; i + 1 < w.size(); ++i)
    if (w[i] == "-j" || w[i] == "--jump" || w[i] == "-g" || w[i] == "--goto") return w[i + 1];
  return "";
}

template <typename T>
Result<std::vector<T>> parse_list(std::string_view text, const char* what,
                                  Result<T> (*parse_one)(std::string_view)) {
  std::vector<T> out;
  std::string_view rest = text;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    if (item.empty())
      return make_error(ErrorCode::InvalidArgument, std::string("empty item in the list of ") +
                                                        what + " '" + std::string(text) + "'");
    Result<T> one = parse_one(item);
    if (!one.ok()) return one.error();
    out.push_back(*one);
    if (comma == std::string_view::npos) return out;
    rest.remove_prefix(comma + 1);
  }
}

std::string owner_rule(const char* match, uint32_t id) {
  return "-m owner " + std::string(match) + " " + std::to_string(id) + " -j RETURN";
}

}  // namespace

std::string Cidr::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::V4 ? AF_INET : AF_INET6, address.data(), text, sizeof(text));
  return std::string(text) + "/" + std::to_string(prefix);
}

Result<Cidr> parse_cidr(std::string_view text) {
  auto invalid = [&](const std::string& why) {
    return make_error(ErrorCode::InvalidArgument,
                      "invalid CIDR '" + std::string(text) + "': " + why);
  };
  size_t slash = text.find('/');
  std::string host(text.substr(0, slash));
  Cidr cidr;
  if (inet_pton(AF_INET, host.c_str(), cidr.address.data()) == 1) {
    cidr.family = Family::V4;
  } else if (inet_pton(AF_INET6, host.c_str(), cidr.address.data()) == 1) {
    cidr.family = Family::V6;
  } else {
    return invalid("not an IPv4 or IPv6 address (expected e.g. 10.0.0.0/8 or fd00::/8)");
  }
  const int max_prefix = cidr.family == Family::V4 ? 32 : 128;
  cidr.prefix = max_prefix;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    int prefix = -1;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || prefix < 0 ||
        prefix > max_prefix)
      return invalid("the prefix length must be 0.." + std::to_string(max_prefix));
    cidr.prefix = prefix;
  }
  // Host bits cleared, as iptables stores it: what `show` prints then matches what was given.
  for (int bit = cidr.prefix; bit < max_prefix; ++bit)
    cidr.address[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  return cidr;
}

Result<uint16_t> parse_port(std::string_view text) {
  unsigned port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port < 1 ||
      port > 65535)
    return make_error(ErrorCode::InvalidArgument,
                      "invalid port '" + std::string(text) + "': expected 1..65535");
  return static_cast<uint16_t>(port);
}

Result<std::vector<Cidr>> parse_cidr_list(std::string_view text) {
  return parse_list<Cidr>(text, "CIDRs", &parse_cidr);
}

Result<std::vector<uint16_t>> parse_port_list(std::string_view text) {
  return parse_list<uint16_t>(text, "ports", &parse_port);
}

NatRules interception_rules(const InterceptionOptions& o, Family family) {
  const std::string out(kOutputChain), redirect(kRedirectChain);
  NatRules r;
  r.chains = {out, redirect};
  r.hooks = {{"OUTPUT", "-p tcp -j " + out}};
  auto add = [&](const std::string& spec) { r.rules.push_back({out, spec}); };
  // The proxy's own connections (to the original destination, to endpoints) must leave as they
  // are, or they would come straight back into it. By uid and by gid: either is enough.
  add(owner_rule("--uid-owner", o.proxy_uid));
  add(owner_rule("--gid-owner", o.proxy_gid));
  // Loopback: 127.0.0.0/8 (::1) by address, and `-o lo` for the rest of the traffic that stays
  // in the pod — to its own pod IP, e.g. a pod calling a Service whose endpoint is itself.
  add(family == Family::V4 ? "-d 127.0.0.0/8 -j RETURN" : "-d ::1/128 -j RETURN");
  add("-o lo -j RETURN");
  if (o.admin_port != 0)
    add("-p tcp -m tcp --dport " + std::to_string(o.admin_port) + " -j RETURN");
  for (uint16_t port : o.skip_outbound_ports)
    add("-p tcp -m tcp --dport " + std::to_string(port) + " -j RETURN");
  for (const Cidr& c : o.skip_outbound_cidrs)
    if (c.family == family) add("-d " + c.to_string() + " -j RETURN");
  if (o.include_outbound_cidrs.empty()) {
    add("-j " + redirect);
  } else {
    // Only these go on; the rest falls off the end of the chain, which is a RETURN. A family
    // none of them belongs to is then not redirected at all.
    for (const Cidr& c : o.include_outbound_cidrs)
      if (c.family == family) add("-d " + c.to_string() + " -j " + redirect);
  }
  r.rules.push_back({redirect, "-p tcp -j REDIRECT --to-ports " + std::to_string(o.outbound_port)});
  if (o.inbound_port == 0) return r;

  const std::string in(kInboundChain), in_redirect(kInboundRedirectChain);
  r.chains.push_back(in);
  r.chains.push_back(in_redirect);
  r.hooks.push_back({"PREROUTING", "-p tcp -j " + in});
  auto add_in = [&](const std::string& spec) { r.rules.push_back({in, spec}); };
  // Loopback arrives through PREROUTING too: the sidecar's own connections to the app (it
  // forwards to the pod IP) and the app calling itself. Neither is a peer to authenticate.
  add_in("-i lo -j RETURN");
  // The ports the sidecar itself serves: the admin port (the kubelet's probes and scrapes come
  // from the node, not from a sidecar) and the two interception ports, which a peer reaching
  // them directly must not loop through.
  std::vector<uint16_t> exempt;
  if (o.admin_port != 0) exempt.push_back(o.admin_port);
  exempt.push_back(o.outbound_port);
  exempt.push_back(o.inbound_port);
  exempt.insert(exempt.end(), o.skip_inbound_ports.begin(), o.skip_inbound_ports.end());
  std::vector<uint16_t> added;
  for (uint16_t port : exempt) {
    if (std::find(added.begin(), added.end(), port) != added.end()) continue;
    added.push_back(port);
    add_in("-p tcp -m tcp --dport " + std::to_string(port) + " -j RETURN");
  }
  add_in("-p tcp -j " + in_redirect);
  r.rules.push_back(
      {in_redirect, "-p tcp -j REDIRECT --to-ports " + std::to_string(o.inbound_port)});
  return r;
}

NatRules parse_nat_rules(std::string_view save_output) {
  NatRules r;
  bool in_nat = false;
  while (!save_output.empty()) {
    size_t nl = save_output.find('\n');
    std::string_view line = trim(save_output.substr(0, nl));
    save_output.remove_prefix(nl == std::string_view::npos ? save_output.size() : nl + 1);
    if (line.starts_with("*")) {
      in_nat = line == "*nat";
    } else if (!in_nat || line.empty() || line.starts_with("#")) {
      continue;
    } else if (line == "COMMIT") {
      in_nat = false;
    } else if (line.starts_with(":")) {
      std::string_view name = line.substr(1, line.find(' ') - 1);
      if (is_ours(name)) r.chains.emplace_back(name);
    } else if (line.starts_with("-A ")) {
      std::string_view rest = trim(line.substr(3));
      size_t blank = rest.find(' ');
      std::string chain(rest.substr(0, blank));
      std::string spec(blank == std::string_view::npos ? "" : trim(rest.substr(blank)));
      if (is_ours(chain)) {
        r.rules.push_back({chain, spec});
      } else if (is_ours(target_of(spec))) {
        r.hooks.push_back({chain, spec});
      }
    }
  }
  return r;
}

std::string restore_input(const NatRules& from, const NatRules& to) {
  if (from.empty() && to.empty()) return "";
  std::vector<std::string> declared = to.chains;
  std::vector<std::string> removed;
  for (const std::string& c : from.chains) {
    if (std::find(to.chains.begin(), to.chains.end(), c) != to.chains.end()) continue;
    declared.push_back(c);  // emptied first, so that nothing in it refers to a chain we delete
    removed.push_back(c);
  }
  // Hooks as multisets: one in both stays where it is (no churn on re-install); the extra
  // copies of a duplicated hook go.
  std::vector<Rule> kept = from.hooks, deleted, inserted;
  for (const Rule& h : to.hooks) {
    auto it = std::find(kept.begin(), kept.end(), h);
    if (it == kept.end()) {
      inserted.push_back(h);
    } else {
      kept.erase(it);
    }
  }
  deleted = std::move(kept);

  std::string text = "*nat\n";
  for (const std::string& c : declared) text += ":" + c + " - [0:0]\n";
  for (const Rule& r : to.rules) text += "-A " + r.chain + " " + r.spec + "\n";
  for (const Rule& h : deleted) text += "-D " + h.chain + " " + h.spec + "\n";
  for (const Rule& h : inserted) text += "-I " + h.chain + " 1 " + h.spec + "\n";
  for (const std::string& c : removed) text += "-X " + c + "\n";
  text += "COMMIT\n";
  return text;
}

std::string format_rules(const NatRules& rules) {
  std::string text;
  for (const std::string& c : rules.chains) text += ":" + c + " - [0:0]\n";
  for (const Rule& h : rules.hooks) text += "-A " + h.chain + " " + h.spec + "\n";
  for (const Rule& r : rules.rules) text += "-A " + r.chain + " " + r.spec + "\n";
  return text;
}

}  // namespace h2mesh::mesh
