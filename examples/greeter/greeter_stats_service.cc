#include "greeter/greeter_stats_service.h"

namespace h2mesh::greeter {

grpc::ServerUnaryReactor* GreeterStatsService::GetStats(grpc::CallbackServerContext* context,
                                                        const helloworld::StatsRequest* /*request*/,
                                                        helloworld::StatsReply* reply) {
  reply->set_calls(counters_->calls.load(std::memory_order_relaxed));
  reply->set_cancelled(counters_->cancelled.load(std::memory_order_relaxed));
  reply->set_completed(counters_->completed.load(std::memory_order_relaxed));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace h2mesh::greeter
