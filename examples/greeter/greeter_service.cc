#include "greeter/greeter_service.h"

#include <grpcpp/alarm.h>

#include <charconv>
#include <chrono>
#include <map>
#include <thread>
#include <utility>

#include "greeter/payload.h"

namespace h2mesh::greeter {
namespace {

using helloworld::HelloReply;
using helloworld::HelloRequest;
using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

constexpr uint64_t kMaxDelayMs = 10 * 60 * 1000;
// Below the server's 64 MiB message limit, leaving room for the other fields.
constexpr uint32_t kMaxReplySize = 60u << 20;
// How often a sync method that is delaying looks for cancellation.
constexpr std::chrono::milliseconds kCancelPoll{2};

// What the request metadata asks for.
struct Behaviour {
  std::chrono::milliseconds delay{0};
  grpc::Status status;  // answered after the delay; OK means do the real work
};

bool parse_uint(grpc::string_ref text, uint64_t* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

// Malformed metadata is answered with INVALID_ARGUMENT, never asserted on.
// `fail_code` (from `greeter serve --fail-code`) applies unless the metadata asks otherwise.
grpc::Status parse_behaviour(const Metadata& metadata, int fail_code, Behaviour* out) {
  if (fail_code != 0)
    out->status = {static_cast<grpc::StatusCode>(fail_code), "failing as configured"};
  if (auto it = metadata.find("x-delay-ms"); it != metadata.end()) {
    uint64_t ms = 0;
    if (!parse_uint(it->second, &ms) || ms > kMaxDelayMs) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "x-delay-ms must be 0..600000"};
    }
    out->delay = std::chrono::milliseconds(ms);
  }
  if (auto it = metadata.find("x-fail-code"); it != metadata.end()) {
    uint64_t code = 0;
    if (!parse_uint(it->second, &code) || code > grpc::StatusCode::UNAUTHENTICATED) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "x-fail-code must be 0..16"};
    }
    out->status = code == 0 ? grpc::Status::OK
                            : grpc::Status{static_cast<grpc::StatusCode>(code), "failing as asked"};
  }
  return grpc::Status::OK;
}

grpc::Status check_reply_size(const HelloRequest& request) {
  if (request.reply_size() <= kMaxReplySize) return grpc::Status::OK;
  return {grpc::StatusCode::INVALID_ARGUMENT, "reply_size must be at most 60 MiB"};
}

grpc::Status cancelled_status() { return {grpc::StatusCode::CANCELLED, "cancelled by the client"}; }

// Returns false when the call is cancelled (client or deadline) before `delay` has passed.
bool wait_unless_cancelled(grpc::ServerContext* context, std::chrono::milliseconds delay) {
  const auto until = std::chrono::steady_clock::now() + delay;
  while (!context->IsCancelled()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return true;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(until - now, kCancelPoll));
  }
  return false;
}

// A SayHello that waits before answering. The alarm callback is the one place that finishes
// the call: OnCancel only cancels the alarm, whose callback then runs at once with ok=false.
// So the call is finished exactly once and counted exactly once. Deletes itself in OnDone, which
// gRPC runs after Finish and after OnCancel has returned; nothing touches `this` after Finish.
class DelayedUnaryReactor : public grpc::ServerUnaryReactor {
 public:
  DelayedUnaryReactor(GreeterCounters* counters, grpc::Status status)
      : counters_(counters), status_(std::move(status)) {}

  // Called once, from the method handler. Finish may run before the handler returns the
  // reactor; ServerUnaryReactor holds it until the reactor is bound.
  void start(std::chrono::milliseconds delay) {
    alarm_.Set(std::chrono::system_clock::now() + delay, [this](bool fired) { on_alarm(fired); });
  }

  void OnCancel() override {
    cancelled_.store(true, std::memory_order_relaxed);
    alarm_.Cancel();
  }

  void OnDone() override { delete this; }

 private:
  void on_alarm(bool fired) {
    if (!fired || cancelled_.load(std::memory_order_relaxed)) {
      counters_->cancelled.fetch_add(1, std::memory_order_relaxed);
      Finish(cancelled_status());
      return;
    }
    counters_->completed.fetch_add(1, std::memory_order_relaxed);
    Finish(status_);
  }

  GreeterCounters* const counters_;
  const grpc::Status status_;
  std::atomic<bool> cancelled_{false};
  grpc::Alarm alarm_;
};

}  // namespace

GreeterService::GreeterService(std::string id, GreeterCounters* counters, int fail_code)
    : id_(std::move(id)), counters_(counters), fail_code_(fail_code) {}

std::string GreeterService::greeting(const std::string& name) const {
  return "Hello from " + id_ + ", " + name + "!";
}

grpc::Status GreeterService::finish_sync(grpc::ServerContext* context, grpc::Status status) {
  if (context->IsCancelled()) {
    counters_->cancelled.fetch_add(1, std::memory_order_relaxed);
    return cancelled_status();
  }
  counters_->completed.fetch_add(1, std::memory_order_relaxed);
  return status;
}

grpc::ServerUnaryReactor* GreeterService::SayHello(grpc::CallbackServerContext* context,
                                                   const HelloRequest* request, HelloReply* reply) {
  counters_->calls.fetch_add(1, std::memory_order_relaxed);
  Behaviour behaviour;
  grpc::Status status = parse_behaviour(context->client_metadata(), fail_code_, &behaviour);
  if (status.ok()) status = behaviour.status;
  if (status.ok()) status = check_reply_size(*request);
  if (status.ok()) {
    reply->set_message(greeting(request->name()));
    if (request->reply_size() > 0) {
      reply->set_payload(make_pattern_payload(0, request->reply_size()));
    }
  }
  if (behaviour.delay.count() == 0) {
    // The fast path: gRPC's own reactor, finished inline.
    counters_->completed.fetch_add(1, std::memory_order_relaxed);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }
  auto* reactor = new DelayedUnaryReactor(counters_, std::move(status));
  reactor->start(behaviour.delay);
  return reactor;
}

grpc::Status GreeterService::SayHelloServerStream(grpc::ServerContext* context,
                                                  const HelloRequest* request,
                                                  grpc::ServerWriter<HelloReply>* writer) {
  counters_->calls.fetch_add(1, std::memory_order_relaxed);
  Behaviour behaviour;
  grpc::Status status = parse_behaviour(context->client_metadata(), fail_code_, &behaviour);
  if (status.ok() && !wait_unless_cancelled(context, behaviour.delay)) {
    return finish_sync(context, cancelled_status());
  }
  if (status.ok()) status = behaviour.status;
  if (status.ok()) status = check_reply_size(*request);
  if (!status.ok()) return finish_sync(context, status);

  HelloReply reply;
  reply.set_message(greeting(request->name()));
  for (uint32_t k = 0; k < request->reply_count(); ++k) {
    if (context->IsCancelled()) break;
    reply.set_index(k);
    reply.set_payload(make_pattern_payload(k, request->reply_size()));
    if (!writer->Write(reply)) {
      // The stream is broken: the client cancelled, its deadline passed or it went away.
      counters_->cancelled.fetch_add(1, std::memory_order_relaxed);
      return cancelled_status();
    }
  }
  return finish_sync(context, grpc::Status::OK);
}

grpc::Status GreeterService::SayHelloClientStream(grpc::ServerContext* context,
                                                  grpc::ServerReader<HelloRequest>* reader,
                                                  HelloReply* reply) {
  counters_->calls.fetch_add(1, std::memory_order_relaxed);
  Behaviour behaviour;
  grpc::Status status = parse_behaviour(context->client_metadata(), fail_code_, &behaviour);
  if (!status.ok()) return finish_sync(context, status);

  HelloRequest request;
  uint64_t messages = 0;
  uint64_t bytes = 0;
  uint64_t hash = kFnvOffsetBasis;
  while (reader->Read(&request)) {
    ++messages;
    bytes += request.payload().size();
    hash = fnv1a64(request.payload(), hash);
  }
  if (!wait_unless_cancelled(context, behaviour.delay)) {
    return finish_sync(context, cancelled_status());
  }
  if (!behaviour.status.ok()) return finish_sync(context, behaviour.status);
  reply->set_message("Hello from " + id_ + ", " + std::to_string(messages) + " messages, " +
                     std::to_string(bytes) + " bytes");
  reply->set_payload(encode_le64(hash));
  return finish_sync(context, grpc::Status::OK);
}

grpc::Status GreeterService::SayHelloBidi(
    grpc::ServerContext* context, grpc::ServerReaderWriter<HelloReply, HelloRequest>* stream) {
  counters_->calls.fetch_add(1, std::memory_order_relaxed);
  Behaviour behaviour;
  grpc::Status status = parse_behaviour(context->client_metadata(), fail_code_, &behaviour);
  if (status.ok() && !wait_unless_cancelled(context, behaviour.delay)) {
    return finish_sync(context, cancelled_status());
  }
  if (status.ok()) status = behaviour.status;
  if (!status.ok()) return finish_sync(context, status);

  HelloRequest request;
  HelloReply reply;
  uint32_t index = 0;
  while (stream->Read(&request)) {
    reply.set_message(greeting(request.name()));
    reply.set_payload(request.payload());
    reply.set_index(index++);
    if (!stream->Write(reply)) {
      counters_->cancelled.fetch_add(1, std::memory_order_relaxed);
      return cancelled_status();
    }
  }
  return finish_sync(context, grpc::Status::OK);
}

}  // namespace h2mesh::greeter
