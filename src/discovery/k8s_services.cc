#include "discovery/k8s_services.h"

#include <arpa/inet.h>

#include "discovery/k8s_json.h"

namespace h2mesh::discovery::k8s {
namespace {

using json::bad;
using json::int_at;
using json::Json;
using json::member;
using json::string_at;

// `text` as inet_ntop writes it, or "" when it is not an IP literal.
std::string canonical_ip(const std::string& text) {
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  int family = text.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (inet_pton(family, text.c_str(), buf) != 1) return std::string();
  if (!inet_ntop(family, buf, out, sizeof(out))) return std::string();
  return out;
}

ServicePort parse_port(const Json& p) {
  ServicePort out;
  out.name = string_at(p, "name");
  out.protocol = string_at(p, "protocol");
  if (out.protocol.empty()) out.protocol = "TCP";
  auto n = int_at(p, "port");
  if (n && *n > 0 && *n <= 65535) out.port = static_cast<uint16_t>(*n);
  out.app_protocol = string_at(p, "appProtocol");
  return out;
}

Result<Service> parse_service(const Json& j) {
  const Json* meta = member(j, "metadata");
  if (!meta || !meta->is_object()) return bad("a Service has no metadata");
  Service s;
  s.name = string_at(*meta, "name");
  if (s.name.empty()) return bad("a Service has no metadata.name");
  s.namespace_ = string_at(*meta, "namespace");
  s.key = s.namespace_ + "/" + s.name;
  const Json* spec = member(j, "spec");
  if (!spec) return s;  // a DELETED event may carry little more than the name
  s.type = string_at(*spec, "type");
  if (s.type.empty()) s.type = "ClusterIP";
  std::string primary = string_at(*spec, "clusterIP");
  s.headless = primary == "None";
  std::vector<std::string> texts;
  if (const Json* ips = member(*spec, "clusterIPs"); ips && ips->is_array() && !ips->empty()) {
    for (const Json& ip : *ips)
      if (ip.is_string()) texts.push_back(ip.get<std::string>());
  } else if (!primary.empty()) {
    texts.push_back(primary);
  }
  for (const auto& t : texts) {
    std::string ip = canonical_ip(t);
    if (!ip.empty()) s.cluster_ips.push_back(std::move(ip));
  }
  if (const Json* ports = member(*spec, "ports"); ports && ports->is_array()) {
    for (const Json& p : *ports)
      if (p.is_object()) s.ports.push_back(parse_port(p));
  }
  return s;
}

}  // namespace

Result<ServiceList> parse_service_list(std::string_view text) {
  return json::parse_object_list<Service>(text, "the Service list", parse_service);
}

Result<ServiceEvent> parse_service_event(std::string_view line) {
  return json::parse_event(line, &ServiceEvent::service, parse_service);
}

}  // namespace h2mesh::discovery::k8s
