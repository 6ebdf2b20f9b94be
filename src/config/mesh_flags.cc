#include "config/mesh_flags.h"

#include <charconv>

#include "config/discovery_reader.h"
#include "config/parser.h"

namespace h2mesh::config {

bool parse_mesh_flags(const std::map<std::string, std::string>& flags, MeshFlags* out,
                      std::string* error) {
  auto value = [&](const char* name) -> const std::string* {
    auto it = flags.find(name);
    return it == flags.end() ? nullptr : &it->second;
  };
  if (const std::string* path = value("--kubeconfig")) out->kubeconfig = *path;
  if (const std::string* list = value("--namespaces")) {
    std::vector<std::string> namespaces;
    size_t start = 0;
    while (start <= list->size()) {
      size_t comma = list->find(',', start);
      if (comma == std::string::npos) comma = list->size();
      std::string ns = list->substr(start, comma - start);
      std::string why, hint;
      if (!check_dns_label(ns, &why, &hint)) {
        *error = "--namespaces: '" + ns + "' " + why;
        return false;
      }
      namespaces.push_back(ns);
      start = comma + 1;
    }
    out->namespaces = std::move(namespaces);
  }
  if (const std::string* port = value("--outbound-port")) {
    unsigned number = 0;
    auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), number);
    if (ec != std::errc() || end != port->data() + port->size() || number == 0 || number > 65535) {
      *error = "--outbound-port: '" + *port + "' is not a port (1-65535)";
      return false;
    }
    out->outbound_port = static_cast<uint16_t>(number);
  }
  if (const std::string* list = value("--opaque-ports")) {
    // The same list as the config's mesh.opaque_ports, which it replaces (not extends).
    std::vector<uint16_t> ports;
    size_t start = 0;
    while (start <= list->size()) {
      size_t comma = list->find(',', start);
      if (comma == std::string::npos) comma = list->size();
      const std::string item = list->substr(start, comma - start);
      unsigned number = 0;
      auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), number);
      if (item.empty() || ec != std::errc() || end != item.data() + item.size() || number == 0 ||
          number > 65535) {
        *error = "--opaque-ports: '" + item + "' is not a port (1-65535)";
        return false;
      }
      ports.push_back(static_cast<uint16_t>(number));
      start = comma + 1;
    }
    out->opaque_ports = std::move(ports);
  }
  if (const std::string* admin = value("--admin")) {
    SocketAddress address;
    std::string why;
    if (!parse_socket_address(*admin, &address, &why)) {
      *error = "--admin: " + why + " (e.g. --admin 0.0.0.0:9901)";
      return false;
    }
    out->admin = address;
  }
  return true;
}

bool apply_mesh_flags(const MeshFlags& flags, Config* config, std::string* error) {
  Mesh& mesh = config->mesh;
  mesh.enabled = true;
  if (flags.kubeconfig) mesh.kubeconfig = *flags.kubeconfig;
  if (flags.namespaces) mesh.namespaces = *flags.namespaces;
  if (flags.outbound_port) mesh.outbound_port = *flags.outbound_port;
  if (flags.opaque_ports) mesh.opaque_ports = *flags.opaque_ports;
  if (flags.admin) {
    config->admin.enabled = true;
    config->admin.address = *flags.admin;
  }
  if (config->source.empty()) config->source = "(--mesh defaults)";
  const std::string port = std::to_string(mesh.outbound_port);
  if (config->admin.enabled && config->admin.address.port == mesh.outbound_port) {
    *error = "the outbound port " + port + " is also the admin port: give one of them another";
    return false;
  }
  for (const Listener& listener : config->listeners) {
    if (listener.address.port == mesh.outbound_port) {
      *error = "the outbound port " + port + " is also listener '" + listener.name + "''s port";
      return false;
    }
  }
  return true;
}

}  // namespace h2mesh::config
