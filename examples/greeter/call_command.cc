#include "greeter/call_command.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <memory>

#include "helloworld.grpc.pb.h"

namespace h2mesh::greeter {
namespace {

constexpr std::string_view kGreetingPrefix = "Hello from ";
constexpr size_t kMinIdColumn = 18;

std::string table_row(const std::string& label, const std::string& value, size_t width) {
  std::string row = label;
  row.resize(std::max(width, label.size()), ' ');
  char count[32];
  std::snprintf(count, sizeof(count), " %5s\n", value.c_str());
  return row + count;
}

}  // namespace

std::optional<std::string> parse_backend_id(std::string_view message) {
  if (message.substr(0, kGreetingPrefix.size()) != kGreetingPrefix) return std::nullopt;
  message.remove_prefix(kGreetingPrefix.size());
  const size_t comma = message.find(", ");
  if (comma == std::string_view::npos || comma == 0) return std::nullopt;
  return std::string(message.substr(0, comma));
}

std::string format_backend_table(const std::map<std::string, uint64_t>& calls_by_backend,
                                 uint64_t failed) {
  size_t width = kMinIdColumn;
  uint64_t total = 0;
  for (const auto& [id, calls] : calls_by_backend) {
    width = std::max(width, id.size());
    total += calls;
  }
  std::string table = table_row("backend", "calls", width);
  for (const auto& [id, calls] : calls_by_backend) {
    table += table_row(id, std::to_string(calls), width);
  }
  if (failed > 0) table += table_row("failed", std::to_string(failed), width);
  table += table_row("total", std::to_string(total), width);
  return table;
}

std::string status_code_name(grpc::StatusCode code) {
  static constexpr std::array<const char*, 17> kNames = {"OK",
                                                         "CANCELLED",
                                                         "UNKNOWN",
                                                         "INVALID_ARGUMENT",
                                                         "DEADLINE_EXCEEDED",
                                                         "NOT_FOUND",
                                                         "ALREADY_EXISTS",
                                                         "PERMISSION_DENIED",
                                                         "RESOURCE_EXHAUSTED",
                                                         "FAILED_PRECONDITION",
                                                         "ABORTED",
                                                         "OUT_OF_RANGE",
                                                         "UNIMPLEMENTED",
                                                         "INTERNAL",
                                                         "UNAVAILABLE",
                                                         "DATA_LOSS",
                                                         "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  if (index >= 0 && index < static_cast<int>(kNames.size())) return kNames[index];
  return "CODE_" + std::to_string(index);
}

int run_call_command(const CallOptions& options, std::ostream& out) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // One channel, one subchannel (pick_first): every call rides the same HTTP/2 connection, so
  // any spread over backends is the proxy's per-call balancing.
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca_pem;
    ssl.pem_cert_chain = options.tls_cert_pem;
    ssl.pem_private_key = options.tls_key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty())
      args.SetSslTargetNameOverride(options.tls_server_name);
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.target, credentials, args);
  std::unique_ptr<helloworld::Greeter::Stub> stub = helloworld::Greeter::NewStub(channel);

  std::map<std::string, uint64_t> calls_by_backend;
  uint64_t failed = 0;
  for (int i = 1; i <= options.count; ++i) {
    grpc::ClientContext context;
    if (options.deadline_ms) {
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(*options.deadline_ms));
    }
    for (const auto& [key, value] : options.metadata) context.AddMetadata(key, value);
    helloworld::HelloRequest request;
    request.set_name(options.name);
    helloworld::HelloReply reply;
    const grpc::Status status = stub->SayHello(&context, request, &reply);
    if (status.ok()) {
      out << "#" << i << " - Greeting: " << reply.message() << "\n";
      ++calls_by_backend[parse_backend_id(reply.message()).value_or("(unknown)")];
    } else {
      out << "#" << i << " - error: " << status_code_name(status.error_code()) << " "
          << status.error_message() << "\n";
      ++failed;
    }
  }
  out << format_backend_table(calls_by_backend, failed);
  out.flush();
  return failed == 0 ? 0 : 1;
}

int run_stats_command(const std::string& target, std::ostream& out, std::ostream& err) {
  auto stub = helloworld::GreeterStats::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  helloworld::StatsReply reply;
  const grpc::Status status = stub->GetStats(&context, helloworld::StatsRequest(), &reply);
  if (!status.ok()) {
    err << "greeter: GetStats: " << status_code_name(status.error_code()) << " "
        << status.error_message() << "\n";
    return 1;
  }
  out << "calls=" << reply.calls() << " cancelled=" << reply.cancelled()
      << " completed=" << reply.completed() << std::endl;
  return 0;
}

}  // namespace h2mesh::greeter
