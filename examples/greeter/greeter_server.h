#pragma once

#include <grpcpp/server.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "greeter/greeter_service.h"
#include "greeter/greeter_stats_service.h"

namespace h2mesh::greeter {

struct ServerOptions {
  std::string address = "0.0.0.0";  // IPv6 literals may be given with or without brackets
  int port = 0;                     // 0: the kernel picks a free port
  std::string id;                   // empty: the hostname
  int max_concurrent_streams = 0;   // 0: gRPC's default; else advertised in SETTINGS
  int fail_code = 0;                // every call answers this grpc-status (0: work normally)
  // TLS (gRPC's SSL server credentials) when both are set: PEM files, the chain leaf first.
  std::string tls_cert_file;
  std::string tls_key_file;
  // With TLS: clients must present a certificate that verifies against this PEM bundle (mTLS).
  std::string tls_client_ca_file;
};

// A running greeter: Greeter, GreeterStats and the standard health service on one port.
// Lets a test run the real backend in-process. Any thread may call any method.
class GreeterServer {
 public:
  // Binds and starts. Returns null and fills `error` (may be null) when it cannot.
  static std::unique_ptr<GreeterServer> start(const ServerOptions& options, std::string* error);

  // Shuts down (with no grace) if shutdown() was not called.
  ~GreeterServer();

  GreeterServer(const GreeterServer&) = delete;
  GreeterServer& operator=(const GreeterServer&) = delete;

  const std::string& id() const { return id_; }
  int port() const { return port_; }
  // "<address>:<port>" with the port actually bound, e.g. "127.0.0.1:40123" or "[::1]:40123".
  std::string listen_address() const;
  const GreeterCounters& counters() const { return counters_; }

  // Stops accepting calls, lets calls in flight finish for up to `grace`, then cancels them.
  // Returns once every call is done. Later calls wait for the first one, then do nothing.
  void shutdown(std::chrono::milliseconds grace);

 private:
  GreeterServer(std::string id, std::string host, int fail_code);

  const std::string id_;
  const std::string host_;  // bracketed when IPv6
  int port_ = 0;
  std::once_flag shutdown_once_;
  GreeterCounters counters_;
  GreeterService service_;
  GreeterStatsService stats_service_;
  std::unique_ptr<grpc::Server> server_;  // last: destroyed before the services it calls
};

// The hostname, or "greeter" when it cannot be read.
std::string default_server_id();

}  // namespace h2mesh::greeter
