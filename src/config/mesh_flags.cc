#include "config/mesh_flags.h"

#include <charconv>

#include "config/access_log_reader.h"
#include "config/discovery_reader.h"
#include "config/mesh_tls_reader.h"
#include "config/parser.h"
#include "config/tracing_reader.h"

namespace h2mesh::config {

namespace {

// --otlp-endpoint, --trace-sample-ratio, --access-log, --access-log-format.
template <typename Lookup>
bool parse_observe_flags(const Lookup& value, MeshFlags* out, std::string* error) {
  if (const std::string* url = value("--otlp-endpoint")) {
    Tracing checked;
    std::string why;
    if (!parse_otlp_endpoint(*url, &checked, &why)) {
      *error = "--otlp-endpoint: '" + *url + "' " + why;
      return false;
    }
    out->otlp_endpoint = *url;
  }
  if (const std::string* text = value("--trace-sample-ratio")) {
    double ratio = 0;
    std::string why;
    if (!parse_sample_ratio(*text, &ratio, &why)) {
      *error = "--trace-sample-ratio: " + why;
      return false;
    }
    out->trace_sample_ratio = ratio;
  }
  if (const std::string* path = value("--access-log")) {
    // "off" rather than a file of that name: what the injector's annotation says too, to undo
    // a config file's access log (./off still names such a file).
    if (std::string why = check_access_log_path_text(*path); !why.empty()) {
      *error = "--access-log: " + why + " (stdout, a file, or off)";
      return false;
    }
    out->access_log = *path;
  }
  if (const std::string* text = value("--access-log-format")) {
    AccessLog::Format format;
    if (!parse_access_log_format(*text, &format)) {
      *error = "--access-log-format: '" + *text + "' is not a format (json or text)";
      return false;
    }
    out->access_log_format = format;
  }
  return true;
}

// What the observability flags name, over the file's tracing and access_log blocks.
bool apply_observe_flags(const MeshFlags& flags, Config* config, std::string* error) {
  Tracing& tracing = config->tracing;
  if (flags.otlp_endpoint) {
    std::string why;
    if (!parse_otlp_endpoint(*flags.otlp_endpoint, &tracing, &why)) {  // checked when parsed
      *error = "--otlp-endpoint: '" + *flags.otlp_endpoint + "' " + why;
      return false;
    }
    tracing.otlp_endpoint = *flags.otlp_endpoint;
    tracing.enabled = true;
  }
  if (flags.trace_sample_ratio) {
    // Silently sampling nothing would hide the mistake until someone looks for a trace.
    if (!tracing.enabled) {
      *error = "--trace-sample-ratio: tracing is off: give --otlp-endpoint too (or the config's "
               "tracing block)";
      return false;
    }
    tracing.sample_ratio = *flags.trace_sample_ratio;
  }
  if (flags.access_log) {
    if (*flags.access_log == "off") {
      config->access_log.reset();
    } else {
      AccessLog& log = config->access_log ? *config->access_log : config->access_log.emplace();
      log.path = *flags.access_log;
    }
  }
  if (flags.access_log_format) {
    if (!config->access_log) {
      *error = "--access-log-format: the access log is off: give --access-log stdout or a file "
               "too (or the config's access_log block)";
      return false;
    }
    config->access_log->format = *flags.access_log_format;
  }
  return true;
}

}  // namespace

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
  for (const char* flag : {"--outbound-port", "--inbound-port"}) {
    const std::string* port = value(flag);
    if (!port) continue;
    unsigned number = 0;
    auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), number);
    if (ec != std::errc() || end != port->data() + port->size() || number == 0 || number > 65535) {
      *error = std::string(flag) + ": '" + *port + "' is not a port (1-65535)";
      return false;
    }
    (flag == std::string_view("--outbound-port") ? out->outbound_port : out->inbound_port) =
        static_cast<uint16_t>(number);
  }
  if (const std::string* path = value("--mesh-cert")) out->mesh_cert = *path;
  if (const std::string* path = value("--mesh-key")) out->mesh_key = *path;
  if (const std::string* path = value("--mesh-ca")) out->mesh_ca = *path;
  if (const std::string* mode = value("--mtls-mode")) {
    MeshTls::Mode m;
    if (!parse_mtls_mode(*mode, &m)) {
      *error = "--mtls-mode: '" + *mode + "' is not a mode (permissive or strict)";
      return false;
    }
    out->mtls_mode = m;
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
  return parse_observe_flags(value, out, error);
}

bool apply_mesh_flags(const MeshFlags& flags, Config* config, std::string* error) {
  Mesh& mesh = config->mesh;
  mesh.enabled = true;
  if (flags.kubeconfig) mesh.kubeconfig = *flags.kubeconfig;
  if (flags.namespaces) mesh.namespaces = *flags.namespaces;
  if (flags.outbound_port) mesh.outbound_port = *flags.outbound_port;
  if (flags.opaque_ports) mesh.opaque_ports = *flags.opaque_ports;
  if (flags.inbound_port) mesh.inbound_port = *flags.inbound_port;
  if (flags.mesh_cert || flags.mesh_key || flags.mesh_ca || flags.mtls_mode) {
    // The flags change what they name in the file's mesh.tls, or make one.
    MeshTls& tls = mesh.tls ? *mesh.tls : mesh.tls.emplace();
    if (flags.mesh_cert) tls.cert = *flags.mesh_cert;
    if (flags.mesh_key) tls.key = *flags.mesh_key;
    if (flags.mesh_ca) tls.ca = *flags.mesh_ca;
    if (flags.mtls_mode) tls.mode = *flags.mtls_mode;
  }
  if (mesh.tls) {
    std::string why = check_mesh_tls(*mesh.tls);
    if (!why.empty()) {
      *error = why;
      return false;
    }
  }
  if (!apply_observe_flags(flags, config, error)) return false;
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
  const std::string inbound = std::to_string(mesh.inbound_port);
  if (mesh.inbound_port == mesh.outbound_port ||
      (config->admin.enabled && config->admin.address.port == mesh.inbound_port)) {
    *error = "the inbound port " + inbound + " is also the " +
             (mesh.inbound_port == mesh.outbound_port ? "outbound" : "admin") +
             " port: give one of them another";
    return false;
  }
  for (const Listener& listener : config->listeners) {
    if (listener.address.port == mesh.inbound_port) {
      *error = "the inbound port " + inbound + " is also listener '" + listener.name + "''s port";
      return false;
    }
  }
  return true;
}

}  // namespace h2mesh::config
