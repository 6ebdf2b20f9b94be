#include "config/discovery_reader.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <system_error>
#include <vector>

#include "config/address_parser.h"
#include "config/resilience_reader.h"

namespace h2mesh::config {

namespace {

constexpr size_t kMaxDnsNameLength = 253;
constexpr size_t kMaxLabelLength = 63;
constexpr size_t kMaxPortNameLength = 15;
constexpr Millis kMinDnsInterval{100};
constexpr Millis kMinDnsTimeout{10};
constexpr Millis kMinKubernetesBackoff{10};
constexpr const char* kDnsNameExample = "e.g. name: greeter-headless.default.svc.cluster.local";

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool all_digits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

bool is_ip_address(std::string_view text) {
  if (text.starts_with('[') && text.ends_with(']')) text = text.substr(1, text.size() - 2);
  const std::string host(text);
  unsigned char binary[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), binary) == 1 ||
         inet_pton(AF_INET6, host.c_str(), binary) == 1;
}

// `what` names the kind of label in errors ("name", "port name").
bool check_lower_label(std::string_view label, size_t max_length, std::string_view what,
                       std::string* error, std::string* hint) {
  const std::string prefix = "invalid " + std::string(what) + " '" + std::string(label) + "': ";
  if (label.size() > max_length) {
    *error = prefix + "longer than " + std::to_string(max_length) + " characters";
    *hint = "a Kubernetes " + std::string(what) + " has at most " + std::to_string(max_length) +
            " characters";
    return false;
  }
  for (char c : label) {
    if (c >= 'A' && c <= 'Z') {
      std::string lower(label);
      for (char& l : lower) l = (l >= 'A' && l <= 'Z') ? static_cast<char>(l - 'A' + 'a') : l;
      *error = prefix + "upper-case letters are not allowed";
      *hint = "Kubernetes names are lower case: '" + lower + "'";
      return false;
    }
    if (!is_letter(c) && !is_digit(c) && c != '-') {
      *error = prefix + "character '" + std::string(1, c) + "' is not allowed";
      *hint = "a Kubernetes " + std::string(what) +
              " (DNS-1123 label) has only lower-case letters, digits and '-'";
      return false;
    }
  }
  if (label.starts_with('-') || label.ends_with('-')) {
    *error = prefix + "starts or ends with '-'";
    *hint = "a Kubernetes " + std::string(what) + " starts and ends with a letter or digit";
    return false;
  }
  return true;
}

// "greeter:50051" written as a name: says where the port goes instead.
std::string colon_hint(std::string_view name) {
  const size_t colon = name.find(':');
  const std::string_view port = name.substr(colon + 1);
  if (name.find(':', colon + 1) == std::string_view::npos && all_digits(port)) {
    return "write the port under 'port': name: " + std::string(name.substr(0, colon)) +
           ", port: " + std::string(port);
  }
  return "a DNS name has only letters, digits, '-' and '.'";
}

bool check_labels(std::string_view body, const std::string& prefix, std::string* error,
                  std::string* hint) {
  std::string_view last;
  for (size_t start = 0; start <= body.size();) {
    const size_t dot = std::min(body.find('.', start), body.size());
    const std::string_view label = body.substr(start, dot - start);
    if (label.empty()) {
      *error = prefix + "empty label (a leading '.' or two in a row)";
      *hint = "a DNS name is labels joined by single dots; remove the extra '.'";
      return false;
    }
    if (label.size() > kMaxLabelLength) {
      *error = prefix + "label '" + std::string(label) + "' is longer than 63 characters";
      *hint = "each label between dots has 1..63 characters";
      return false;
    }
    if (label.starts_with('-') || label.ends_with('-')) {
      *error = prefix + "label '" + std::string(label) + "' starts or ends with '-'";
      *hint = "a label starts and ends with a letter or digit";
      return false;
    }
    last = label;
    start = dot + 1;
  }
  if (all_digits(last)) {
    *error = prefix + "the last label '" + std::string(last) + "' is all digits";
    *hint = "a DNS name ends with a label that has a letter, e.g. svc.cluster.local";
    return false;
  }
  return true;
}

std::optional<SocketAddress> read_resolver(const Located& item, Diagnostics* diag) {
  auto text = read_string(item, diag, /*allow_empty=*/true);
  if (!text) return std::nullopt;
  AddressParse parse = parse_address(*text);
  const char* ip_only = "a resolver is an IP address: its own name would need another resolver";
  const char* malformed = "write an IP address and a port, e.g. 10.96.0.10:53 or [fd00::10]:53";
  std::string hint;
  switch (parse.problem) {
    case AddressProblem::None:
      if (parse.address.port != 0) return parse.address;
      diag->add(item.mark, item.path + ": a resolver cannot have port 0",
                "resolver ports are 1..65535, usually 53");
      return std::nullopt;
    case AddressProblem::NoPort:
      if (is_ip_address(*text)) {
        hint = "add the resolver's port, usually 53: " + *text + ":53";
      } else {
        hint = looks_like_hostname(parse.host) ? ip_only : malformed;
      }
      break;
    case AddressProblem::Malformed:
      hint = malformed;
      break;
    case AddressProblem::BadPort:
      hint = "resolver ports are 1..65535, usually 53";
      break;
    case AddressProblem::NotIp:
      hint = looks_like_hostname(parse.host)
                 ? ip_only
                 : "write an IPv4 address like 10.96.0.10 or an IPv6 address in brackets like "
                   "[fd00::10]";
      break;
  }
  diag->add(item.mark, item.path + ": " + parse.error, hint);
  return std::nullopt;
}

void read_resolvers(const Located& value, std::vector<SocketAddress>* resolvers,
                    Diagnostics* diag) {
  if (value.node.IsScalar()) {
    diag->add(value.mark, value.path + ": expected a sequence, got " + describe_node(value.node),
              "write a list, e.g. [\"" + value.node.Scalar() + "\"]");
    return;
  }
  auto items = read_sequence(value, diag);
  if (!items) return;
  std::vector<SocketAddress> parsed;
  std::map<std::string, int> seen;  // address -> line
  bool ok = true;
  for (const Located& item : *items) {
    auto address = read_resolver(item, diag);
    if (!address) {
      ok = false;
      continue;
    }
    auto [it, inserted] = seen.emplace(address->to_string(), line_of(item.mark));
    if (!inserted) {
      diag->add(item.mark, item.path + ": duplicate resolver " + address->to_string(),
                "already listed on line " + std::to_string(it->second) + "; remove one");
      ok = false;
      continue;
    }
    parsed.push_back(*address);
  }
  if (ok) *resolvers = std::move(parsed);
}

void read_dns_name(const Located& value, std::string* name, Diagnostics* diag) {
  auto text = read_string(value, diag, /*allow_empty=*/true);
  if (!text) return;
  std::string error;
  std::string hint;
  if (!check_dns_name(*text, &error, &hint)) {
    diag->add(value.mark, value.path + ": " + error, hint);
    return;
  }
  *name = *text;
}

void read_dns(const Located& value, DnsDiscovery* dns, Diagnostics* diag) {
  MapReader map(value, {"name", "port", "resolvers", "min_interval", "max_interval", "timeout"},
                diag);
  if (auto name = map.require("name", kDnsNameExample)) read_dns_name(*name, &dns->name, diag);
  if (auto port = map.require("port",
                              "the port every resolved address is reached on, e.g. "
                              "port: 50051")) {
    if (auto number = read_int(*port, 1, 65535, diag)) dns->port = static_cast<uint16_t>(*number);
  }
  if (auto resolvers = map.get("resolvers")) read_resolvers(*resolvers, &dns->resolvers, diag);
  const bool min_ok = set_duration(map, "min_interval", kMinDnsInterval, &dns->min_interval, diag);
  const bool max_ok = set_duration(map, "max_interval", kMinDnsInterval, &dns->max_interval, diag);
  set_duration(map, "timeout", kMinDnsTimeout, &dns->timeout, diag);
  if (map.ok() && min_ok && max_ok && dns->max_interval < dns->min_interval) {
    diag->add(cross_check_mark(map, "max_interval", "min_interval"),
              value.path + ": max_interval (" + format_millis(dns->max_interval) +
                  ") is shorter than min_interval (" + format_millis(dns->min_interval) + ")",
              "the name is re-resolved after its TTL, kept between min_interval and "
              "max_interval, so max_interval must be >= min_interval (defaults: 1s and 30s)");
  }
}

enum class KubernetesName { Namespace, Service };

void read_kubernetes_name(const Located& value, KubernetesName kind, std::string* field,
                          Diagnostics* diag) {
  auto text = read_string(value, diag, /*allow_empty=*/true);
  if (!text) return;
  const bool service = kind == KubernetesName::Service;
  std::string error;
  std::string hint;
  if (text->empty() && !service) {
    *field = *text;  // the pod's own namespace
    return;
  }
  if (text->empty()) {
    error = "must not be empty";
    hint = "write the Service's name, e.g. service: greeter";
  } else if (check_dns_label(*text, &error, &hint)) {
    *field = *text;
    return;
  }
  if (service && text->find('.') != std::string::npos) {
    hint = "write only the Service's name; its namespace goes under 'namespace'";
  }
  diag->add(value.mark, value.path + ": " + error, hint);
}

void read_kubernetes_port(const Located& value, std::string* port, Diagnostics* diag) {
  auto text = read_string(value, diag, /*allow_empty=*/true);
  if (!text) return;
  if (text->empty()) {
    diag->add(value.mark, value.path + ": must not be empty",
              "omit 'port' when the Service has a single port; otherwise write its name or "
              "number, e.g. port: grpc");
    return;
  }
  const std::string_view digits = std::string_view(*text).substr(text->starts_with('-') ? 1 : 0);
  if (all_digits(digits)) {
    int64_t number = 0;
    auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), number);
    if (ec != std::errc() || number < 1 || number > 65535) {
      diag->add(value.mark, value.path + ": port " + *text + " is out of range",
                "allowed range: 1..65535, or a port name such as grpc");
      return;
    }
    *port = std::to_string(number);
    return;
  }
  std::string error;
  std::string hint;
  if (!check_port_name(*text, &error, &hint)) {
    diag->add(value.mark, value.path + ": " + error, hint);
    return;
  }
  *port = *text;
}

void read_kubeconfig(const Located& value, std::string* kubeconfig, Diagnostics* diag) {
  auto text = read_string(value, diag, /*allow_empty=*/true);
  if (!text) return;
  if (text->starts_with('~') || text->starts_with('$')) {
    diag->add(value.mark, value.path + ": '" + *text + "' is not expanded",
              "write the full path, e.g. /root/.kube/config; '~' and environment variables are "
              "not expanded");
    return;
  }
  *kubeconfig = *text;
}

void read_kubernetes(const Located& value, KubernetesDiscovery* kubernetes, Diagnostics* diag) {
  MapReader map(value, {"namespace", "service", "port", "kubeconfig", "backoff"}, diag);
  if (auto ns = map.get("namespace")) {
    read_kubernetes_name(*ns, KubernetesName::Namespace, &kubernetes->namespace_, diag);
  }
  if (auto service = map.require("service",
                                 "the Service whose EndpointSlices to watch, e.g. "
                                 "service: greeter")) {
    read_kubernetes_name(*service, KubernetesName::Service, &kubernetes->service, diag);
  }
  if (auto port = map.get("port")) read_kubernetes_port(*port, &kubernetes->port, diag);
  if (auto kubeconfig = map.get("kubeconfig")) {
    read_kubeconfig(*kubeconfig, &kubernetes->kubeconfig, diag);
  }
  if (auto backoff = map.get("backoff")) {
    read_backoff(*backoff, kMinKubernetesBackoff, &kubernetes->backoff_base,
                 &kubernetes->backoff_max, "500ms and 30s", diag);
  }
}

}  // namespace

void read_discovery(const Located& value, Discovery* discovery, Diagnostics* diag) {
  MapReader map(value, {"dns", "kubernetes"}, diag);
  if (!map.ok()) return;
  const auto dns = map.get("dns");
  const auto kubernetes = map.get("kubernetes");
  // A map of unknown keys only is already reported; "needs dns or kubernetes" would repeat it.
  if (!dns && !kubernetes && value.node.size() == 0) {
    diag->add(value.mark, value.path + ": needs 'dns' or 'kubernetes'",
              "e.g. discovery: { dns: { name: greeter-headless.default.svc.cluster.local, "
              "port: 50051 } }; without 'discovery', list the cluster's 'endpoints'");
  }
  if (dns && kubernetes) {
    const YAML::Mark dns_mark = map.key_mark("dns");
    const YAML::Mark kubernetes_mark = map.key_mark("kubernetes");
    diag->add(dns_mark.pos > kubernetes_mark.pos ? dns_mark : kubernetes_mark,
              value.path + ": 'dns' and 'kubernetes' cannot both be set",
              "a cluster has one source of endpoints: keep one of them");
  } else if (dns) {
    discovery->type = DiscoveryType::Dns;
  } else if (kubernetes) {
    discovery->type = DiscoveryType::Kubernetes;
  }
  // Both are read even when both are set, so that their own mistakes show up too.
  if (dns) read_dns(*dns, &discovery->dns, diag);
  if (kubernetes) read_kubernetes(*kubernetes, &discovery->kubernetes, diag);
}

bool check_dns_name(std::string_view name, std::string* error, std::string* hint) {
  const std::string prefix = "invalid DNS name '" + std::string(name) + "': ";
  if (name.empty()) {
    *error = "must not be empty";
    *hint = kDnsNameExample;
    return false;
  }
  if (is_ip_address(name)) {
    *error = "'" + std::string(name) + "' is an IP address, not a DNS name";
    *hint = "list IP addresses under the cluster's 'endpoints' instead of using discovery";
    return false;
  }
  if (name.find("://") != std::string_view::npos) {
    *error = prefix + "a URL is not a name";
    *hint = "write only the host name, " + std::string(kDnsNameExample);
    return false;
  }
  if (name.find(':') != std::string_view::npos) {
    *error = prefix + "character ':' is not allowed";
    *hint = colon_hint(name);
    return false;
  }
  for (char c : name) {
    if (is_letter(c) || is_digit(c) || c == '-' || c == '.') continue;
    const bool ascii = static_cast<unsigned char>(c) < 0x80;
    *error = prefix + (ascii ? "character '" + std::string(1, c) + "' is not allowed"
                             : std::string("non-ASCII characters are not allowed"));
    *hint = ascii ? "a DNS name has only letters, digits, '-' and '.'"
                  : "write an internationalized name in its ASCII form (xn--...)";
    return false;
  }
  // One trailing dot marks a fully qualified name (no search domains); it is not part of the
  // length limit.
  const std::string_view body = name.ends_with('.') ? name.substr(0, name.size() - 1) : name;
  if (body.size() > kMaxDnsNameLength) {
    *error = "invalid DNS name: " + std::to_string(body.size()) + " characters long";
    *hint = "a DNS name has at most 253 characters";
    return false;
  }
  return check_labels(body, prefix, error, hint);
}

bool check_dns_label(std::string_view label, std::string* error, std::string* hint) {
  if (label.empty()) {
    *error = "must not be empty";
    *hint = "a Kubernetes name has 1..63 lower-case letters, digits and '-'";
    return false;
  }
  return check_lower_label(label, kMaxLabelLength, "name", error, hint);
}

bool check_port_name(std::string_view name, std::string* error, std::string* hint) {
  if (name.empty()) {
    *error = "must not be empty";
    *hint = "a port name has 1..15 lower-case letters, digits and '-', e.g. grpc";
    return false;
  }
  if (!check_lower_label(name, kMaxPortNameLength, "port name", error, hint)) return false;
  const std::string prefix = "invalid port name '" + std::string(name) + "': ";
  if (name.find("--") != std::string_view::npos) {
    *error = prefix + "'--' is not allowed";
    *hint = "a Kubernetes port name (IANA service name) has no two '-' in a row";
    return false;
  }
  bool has_letter = false;
  for (char c : name) has_letter = has_letter || is_letter(c);
  if (!has_letter) {
    *error = prefix + "it has no letter";
    *hint = "a port is a number 1..65535 or a name with at least one letter, e.g. grpc";
    return false;
  }
  return true;
}

}  // namespace h2mesh::config
