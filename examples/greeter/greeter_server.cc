#include "greeter/greeter_server.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <unistd.h>

#include <climits>
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
  std::unique_ptr<GreeterServer> server(new GreeterServer(
      options.id.empty() ? default_server_id() : options.id, bracket_if_ipv6(options.address),
      options.fail_code));

  // Process-wide switch, read when a server is built: adds grpc.health.v1.Health, whose ""
  // service answers SERVING while the server runs.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(server->host_ + ":" + std::to_string(options.port),
                           grpc::InsecureServerCredentials(), &server->port_);
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
