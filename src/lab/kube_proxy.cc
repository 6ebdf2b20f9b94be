#include "lab/kube_proxy.h"

#include <cstdio>

namespace h2mesh::lab {
namespace {

// FNV-1a, 64 bits: stable across runs and builds (std::hash is not promised to be).
std::string short_hash(const std::string& text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llX", static_cast<unsigned long long>(h));
  return buf;
}

std::string service_key(const ServiceRule& s) {
  return s.namespace_ + "/" + s.name + ":" + s.port_name;
}

// Comments are quoted for iptables-restore, which splits its lines like a shell.
std::string comment(const std::string& text) { return "-m comment --comment \"" + text + "\""; }

constexpr const char* kMasqMark = "0x4000/0x4000";

}  // namespace

std::string service_chain(const ServiceRule& s) { return "KUBE-SVC-" + short_hash(service_key(s)); }

std::string endpoint_chain(const ServiceRule& s, const std::string& endpoint) {
  return "KUBE-SEP-" + short_hash(service_key(s) + "@" + endpoint);
}

std::string endpoint_probability(size_t i, size_t n) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.10f", 1.0 / static_cast<double>(n - i));
  return buf;
}

std::string kube_proxy_rules(const std::vector<ServiceRule>& services) {
  std::string chains, rules;
  chains +=
      ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      ":POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n"
      ":KUBE-POSTROUTING - [0:0]\n";
  rules += "-A PREROUTING " + comment("kubernetes service portals") + " -j KUBE-SERVICES\n";
  rules += "-A OUTPUT " + comment("kubernetes service portals") + " -j KUBE-SERVICES\n";
  rules += "-A POSTROUTING " + comment("kubernetes postrouting rules") + " -j KUBE-POSTROUTING\n";
  rules += std::string("-A KUBE-MARK-MASQ -j MARK --set-xmark ") + kMasqMark + "\n";
  rules += std::string("-A KUBE-POSTROUTING -m mark --mark ") + kMasqMark + " -j MASQUERADE\n";
  for (const auto& s : services) {
    const std::string key = service_key(s);
    const std::string portal =
        "-d " + s.cluster_ip + "/32 -p tcp -m tcp --dport " + std::to_string(s.port);
    if (s.endpoints.empty()) continue;
    const std::string svc = service_chain(s);
    chains += ":" + svc + " - [0:0]\n";
    rules +=
        "-A KUBE-SERVICES " + portal + " " + comment(key + " cluster IP") + " -j " + svc + "\n";
    for (size_t i = 0; i < s.endpoints.size(); ++i) {
      const std::string& ip = s.endpoints[i];
      const std::string target = ip + ":" + std::to_string(s.target_port);
      const std::string sep = endpoint_chain(s, ip);
      chains += ":" + sep + " - [0:0]\n";
      rules += "-A " + svc + " " + comment(key + " -> " + target);
      if (i + 1 < s.endpoints.size())
        rules += " -m statistic --mode random --probability " +
                 endpoint_probability(i, s.endpoints.size());
      rules += " -j " + sep + "\n";
      rules += "-A " + sep + " -s " + ip + "/32 " + comment(key) + " -j KUBE-MARK-MASQ\n";
      rules += "-A " + sep + " -p tcp " + comment(key) + " -m tcp -j DNAT --to-destination " +
               target + "\n";
    }
  }
  return "*nat\n" + chains + rules + "COMMIT\n";
}

}  // namespace h2mesh::lab
