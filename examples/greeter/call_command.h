#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace h2mesh::greeter {

struct CallOptions {
  std::string target;  // HOST:PORT, or any gRPC target URI
  int count = 1;
  std::string name = "Anvil User";
  std::optional<int> deadline_ms;                             // per call; none: no deadline
  std::vector<std::pair<std::string, std::string>> metadata;  // sent with every call
  // TLS (grpc::SslCredentials) when `tls`: the server is verified against tls_ca_pem; with
  // tls_cert_pem and tls_key_pem the client shows that certificate (mTLS). tls_server_name, when
  // set, is the name verified and sent as SNI instead of the target's host.
  bool tls = false;
  std::string tls_ca_pem;
  std::string tls_cert_pem;
  std::string tls_key_pem;
  std::string tls_server_name;
};

// `greeter call`: options.count unary SayHello calls in sequence over one channel (one HTTP/2
// connection), one line per call, then the table of replies per backend, all to `out`.
// Returns the exit code: 0 when every call succeeded, 1 otherwise.
int run_call_command(const CallOptions& options, std::ostream& out);

// `greeter stats`: one GreeterStats/GetStats call, printed as "calls=C cancelled=X completed=Y".
// Returns 0, or 1 (with the error on `err`) when the call fails.
int run_stats_command(const std::string& target, std::ostream& out, std::ostream& err);

// The <ID> of "Hello from <ID>, ...", or nullopt when `message` has another shape.
std::optional<std::string> parse_backend_id(std::string_view message);

// The per-backend table, sorted by backend id, ending with the total; `failed` adds a row.
std::string format_backend_table(const std::map<std::string, uint64_t>& calls_by_backend,
                                 uint64_t failed);

// "OK", "CANCELLED", ..., "UNAUTHENTICATED"; "CODE_<n>" for anything else.
std::string status_code_name(grpc::StatusCode code);

}  // namespace h2mesh::greeter
