#include "greeter/greeter_server.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <unistd.h>

#include <climits>
#include <fstream>
#include <sstream>
#include <utility>

namespace h2mesh::greeter {
namespace {

// The streaming tests send 4 MiB messages; leave plenty of room.
constexpr int kMaxMessageBytes = 64 << 20;

std::string bracket_if_ipv6(const std::string& address) {
  if (address.find(':') != std::string::npos && address.front() != '[') {
    return "[" + address + "]";
  }
  return address;
}

bool read_file(const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream out;
  out << in.rdbuf();
  *text = out.str();
  return static_cast<bool>(in) || in.eof();
}

// Insecure (h2c) without a certificate; else gRPC's TLS server credentials, which offer ALPN h2.
std::shared_ptr<grpc::ServerCredentials> credentials(const ServerOptions& options,
                                                     std::string* error) {
  if (options.tls_cert_file.empty() && options.tls_key_file.empty()) {
    if (!options.tls_client_ca_file.empty()) {
      *error = "a client CA needs TLS (a certificate and a key)";
      return nullptr;
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (!read_file(options.tls_key_file, &pair.private_key)) {
    *error = "cannot read the TLS key " + options.tls_key_file;
    return nullptr;
  }
  if (!read_file(options.tls_cert_file, &pair.cert_chain)) {
    *error = "cannot read the TLS certificate " + options.tls_cert_file;
    return nullptr;
  }
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back(pair);
  if (!options.tls_client_ca_file.empty()) {
    if (!read_file(options.tls_client_ca_file, &ssl.pem_root_certs)) {
      *error = "cannot read the client CA " + options.tls_client_ca_file;
      return nullptr;
    }
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

std::string default_server_id() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "greeter";
  return name;
}

GreeterServer::GreeterServer(std::string id, std::string host, int fail_code)
    : id_(std::move(id)),
      host_(std::move(host)),
      service_(id_, &counters_, fail_code),
      stats_service_(&counters_) {}

std::unique_ptr<GreeterServer> GreeterServer::start(const ServerOptions& options,
                                                    std::string* error) {
  if (options.address.empty() || options.port < 0 || options.port > 65535) {
    if (error) *error = "bad address or port";
    return nullptr;
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    if (error) *error = "TLS needs both a certificate and a key";
    return nullptr;
  }
  std::string why;
  std::shared_ptr<grpc::ServerCredentials> creds = credentials(options, &why);
  if (!creds) {
    if (error) *error = why;
    return nullptr;
  }
  std::unique_ptr<GreeterServer> server(new GreeterServer(
      options.id.empty() ? default_server_id() : options.id, bracket_if_ipv6(options.address),
      options.fail_code));

  // Process-wide switch, read when a server is built: adds grpc.health.v1.Health, whose ""
  // service answers SERVING while the server runs.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(server->host_ + ":" + std::to_string(options.port),
                           creds, &server->port_);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  if (options.max_concurrent_streams > 0)
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  builder.RegisterService(&server->service_);
  builder.RegisterService(&server->stats_service_);
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) {
    if (error) *error = "cannot listen on " + server->host_ + ":" + std::to_string(options.port);
    return nullptr;
  }
  return server;
}

GreeterServer::~GreeterServer() {
  if (server_) shutdown(std::chrono::milliseconds(0));
}

std::string GreeterServer::listen_address() const { return host_ + ":" + std::to_string(port_); }

void GreeterServer::shutdown(std::chrono::milliseconds grace) {
  std::call_once(shutdown_once_, [&] {
    server_->Shutdown(std::chrono::system_clock::now() + grace);
    server_->Wait();
  });
}

}  // namespace h2mesh::greeter
