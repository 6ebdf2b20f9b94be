#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "helloworld.grpc.pb.h"

namespace h2mesh::greeter {

// Counters since start across all Greeter methods. Written by gRPC's threads with relaxed
// atomics; read by GetStats and by tests running a server in-process.
struct GreeterCounters {
  std::atomic<uint64_t> calls{0};
  // The server saw cancellation by the client or the deadline before it could answer.
  std::atomic<uint64_t> cancelled{0};
  // The server answered (OK or the status asked for by x-fail-code) without seeing cancellation.
  std::atomic<uint64_t> completed{0};
};

// The Greeter methods. SayHello uses the callback API (the benchmarks hammer it; a delay is an
// alarm, not a parked thread); the streaming methods use the sync API, one gRPC thread each.
// Request metadata chooses the behaviour of every method:
//   x-delay-ms: N   wait N ms before answering; cancellation ends the wait at once
//   x-fail-code: C  answer with status C and message "failing as asked"
// gRPC's threads call every method. `counters` is not owned and must outlive the service.
class GreeterService
    : public helloworld::Greeter::WithCallbackMethod_SayHello<helloworld::Greeter::Service> {
 public:
  // fail_code != 0: every call is answered with that grpc-status unless x-fail-code says other.
  GreeterService(std::string id, GreeterCounters* counters, int fail_code = 0);

  grpc::ServerUnaryReactor* SayHello(grpc::CallbackServerContext* context,
                                     const helloworld::HelloRequest* request,
                                     helloworld::HelloReply* reply) override;
  grpc::Status SayHelloServerStream(grpc::ServerContext* context,
                                    const helloworld::HelloRequest* request,
                                    grpc::ServerWriter<helloworld::HelloReply>* writer) override;
  grpc::Status SayHelloClientStream(grpc::ServerContext* context,
                                    grpc::ServerReader<helloworld::HelloRequest>* reader,
                                    helloworld::HelloReply* reply) override;
  grpc::Status SayHelloBidi(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<helloworld::HelloReply, helloworld::HelloRequest>* stream) override;

 private:
  // "Hello from <id>, <name>!"
  std::string greeting(const std::string& name) const;
  // Counts the end of a sync call, whose `status` is returned as is.
  grpc::Status finish_sync(grpc::ServerContext* context, grpc::Status status);

  const std::string id_;
  GreeterCounters* const counters_;
  const int fail_code_;
};

}  // namespace h2mesh::greeter
