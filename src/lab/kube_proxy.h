#pragma once

// The node's Service rules, written the way kube-proxy's iptables mode writes them: a
// KUBE-SERVICES chain hooked from PREROUTING (traffic from pods) and OUTPUT (the node's own),
// one KUBE-SVC-* chain per Service port that picks an endpoint per new connection with
// `-m statistic --mode random`, and one KUBE-SEP-* chain per endpoint that DNATs to it. Pure text,
// applied by the lab with iptables-restore; conntrack keeps an established connection on the
// endpoint it was given, so a rewrite only affects new connections (as with kube-proxy).

#include <cstdint>
#include <string>
#include <vector>

namespace h2mesh::lab {

struct ServiceRule {
  std::string namespace_;  // "grpcdemo"
  std::string name;        // "greeter"
  std::string port_name;   // "grpc"
  std::string cluster_ip;  // IPv4, e.g. "10.96.0.10"
  uint16_t port = 0;       // the Service port, e.g. 50051
  uint16_t target_port = 0;
  std::vector<std::string> endpoints;  // ready pod IPs (IPv4)
};

// The chain names kube-proxy would use in spirit: a stable hash of what they stand for, so that
// a rewrite keeps the names (tests and `iptables -t nat -S` readers can rely on them).
std::string service_chain(const ServiceRule& s);
std::string endpoint_chain(const ServiceRule& s, const std::string& endpoint);

// The nat table for iptables-restore (without --noflush: it replaces the table, which the lab's
// node namespace holds for itself). As kube-proxy does, a pod that reaches itself through its
// Service (hairpin) is masqueraded, or its reply would bypass the DNAT. A Service port without
// endpoints gets no rule: the node has no route for cluster IPs, so a client is refused at once
// (ICMP unreachable), as kube-proxy's REJECT rule does.
std::string kube_proxy_rules(const std::vector<ServiceRule>& services);

// The probability kube-proxy gives the i-th of n endpoints (0-based): 1/(n-i), so that each is
// picked with 1/n overall; the last rule has none. Written with 10 decimals, as kube-proxy does.
std::string endpoint_probability(size_t i, size_t n);

}  // namespace h2mesh::lab
