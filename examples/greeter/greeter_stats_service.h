#pragma once

#include "greeter/greeter_service.h"
#include "helloworld.grpc.pb.h"

namespace h2mesh::greeter {

// GreeterStats/GetStats: a snapshot of the Greeter counters. Called on gRPC's threads;
// `counters` is not owned and must outlive the service.
class GreeterStatsService : public helloworld::GreeterStats::CallbackService {
 public:
  explicit GreeterStatsService(const GreeterCounters* counters) : counters_(counters) {}

  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const helloworld::StatsRequest* request,
                                     helloworld::StatsReply* reply) override;

 private:
  const GreeterCounters* const counters_;
};

}  // namespace h2mesh::greeter
