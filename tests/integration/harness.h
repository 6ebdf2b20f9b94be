#pragma once

// Real processes for integration tests: greeter backends and an h2mesh proxy, each started
// from the build's bin/ directory on loopback ports the kernel picks, stopped by the fixture.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "greeter/payload.h"
#include "helloworld.grpc.pb.h"

namespace h2mesh_test {

using h2mesh::Subprocess;
namespace greeter = h2mesh::greeter;

constexpr auto kStartTimeout = std::chrono::seconds(20);

// Directory of the test binaries' siblings: build/bin.
std::string bin_dir();
// A fresh temporary directory for logs and configs.
std::string make_temp_dir();

struct Backend {
  std::string id;
  uint16_t port = 0;
  std::unique_ptr<Subprocess> process;
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

// Starts `greeter serve` on 127.0.0.1 (port 0 unless given) and waits until it listens.
Backend start_backend(const std::string& dir, const std::string& id, uint16_t port = 0,
                      const std::vector<std::string>& extra_args = {});

struct Proxy {
  std::unique_ptr<Subprocess> process;
  uint16_t port = 0;        // the first listener
  uint16_t admin_port = 0;
  std::string config_path;
  std::string target() const { return "127.0.0.1:" + std::to_string(port); }
};

// Writes `yaml` to dir/h2mesh.yaml, starts `h2mesh run`, waits for its listener and admin lines.
// `prefix` goes before the command (e.g. `prlimit --nofile=N:N --`).
Proxy start_proxy(const std::string& dir, const std::string& yaml,
                  const std::vector<std::string>& prefix = {});

// A config with one listener (127.0.0.1:0), admin on 127.0.0.1:0 and one cluster "greeter".
std::string simple_config(const std::vector<std::string>& endpoints, const std::string& policy,
                          int workers = 1, const std::string& extra_cluster_yaml = "",
                          const std::string& extra_top_yaml = "");

// One channel = one HTTP/2 connection (a local subchannel pool keeps channels apart).
std::shared_ptr<grpc::Channel> make_channel(const std::string& target);

// Plain HTTP/1.1 GET against the admin port; returns {status, body}.
std::pair<int, std::string> http_get(uint16_t port, const std::string& path);
// The value of one sample of h2mesh's /metrics, `series` being the name and labels as written
// (e.g. h2mesh_cluster_calls_total{cluster="greeter"}); nullopt when the series is not there.
std::optional<uint64_t> metric(uint16_t admin_port, const std::string& series);

// The backend id in "Hello from <id>, ...".
std::string backend_of(const std::string& message);

// What an interop client (tests/interop: Python, Node) printed: its last stdout line that is a
// JSON object, parsed just enough for the tests' checks.
struct InteropReport {
  std::string json;  // "" when there was none
  std::optional<int> ok;
  std::optional<int> failed;
  std::map<std::string, int> backends;  // unary calls per backend id
  std::optional<bool> stream_ok;
  std::optional<bool> bidi_ok;
};
InteropReport parse_interop_report(const std::string& stdout_text);

// Calls GreeterStats/GetStats directly on a backend.
helloworld::StatsReply backend_stats(const Backend& b);

// Polls `pred` every 10 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// Async unary calls with x-delay-ms, finished later through one completion queue.
class SlowCalls {
 public:
  SlowCalls(helloworld::Greeter::Stub& stub, int n, int delay_ms, int deadline_ms = 0)
      : replies_(n), statuses_(n), done_at_(n) {
    start_ = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      auto ctx = std::make_unique<grpc::ClientContext>();
      ctx->AddMetadata("x-delay-ms", std::to_string(delay_ms));
      if (deadline_ms > 0)
        ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
      helloworld::HelloRequest req;
      req.set_name("slow");
      auto rpc = stub.AsyncSayHello(ctx.get(), req, &cq_);
      rpc->Finish(&replies_[i], &statuses_[i], reinterpret_cast<void*>(static_cast<intptr_t>(i)));
      ctxs_.push_back(std::move(ctx));
    }
  }
  void cancel_all() {
    for (auto& c : ctxs_) c->TryCancel();
  }
  // Waits for every call (bounded by `timeout`); returns false if some never finished.
  bool wait(std::chrono::seconds timeout) {
    auto deadline = std::chrono::system_clock::now() + timeout;
    for (size_t n = 0; n < ctxs_.size(); ++n) {
      void* tag;
      bool ok;
      if (cq_.AsyncNext(&tag, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) return false;
      done_at_[reinterpret_cast<intptr_t>(tag)] = std::chrono::steady_clock::now() - start_;
    }
    return true;
  }
  const grpc::Status& status(size_t i) const { return statuses_[i]; }
  const helloworld::HelloReply& reply(size_t i) const { return replies_[i]; }
  std::chrono::steady_clock::duration took(size_t i) const { return done_at_[i]; }
  size_t size() const { return ctxs_.size(); }
  ~SlowCalls() {
    cancel_all();
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

 private:
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs_;
  std::vector<helloworld::HelloReply> replies_;
  std::vector<grpc::Status> statuses_;
  std::vector<std::chrono::steady_clock::duration> done_at_;
  std::chrono::steady_clock::time_point start_;
};

// Sequential unary calls on one channel from a background thread until stopped.
class SteadyLoad {
 public:
  SteadyLoad(const std::string& target, std::chrono::milliseconds deadline)
      : stub_(helloworld::Greeter::NewStub(make_channel(target))), deadline_(deadline) {
    thread_ = std::thread([this] { run(); });
  }
  ~SteadyLoad() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  struct Result {
    bool ok;
    grpc::StatusCode code;
    std::string message;
    std::string backend;
  };
  std::vector<Result> results() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_.size();
  }
  // Waits until `n` more calls than now have finished.
  bool wait_more(size_t n, std::chrono::seconds timeout) {
    size_t target = count() + n;
    return eventually([&] { return count() >= target; }, timeout);
  }

 private:
  void run() {
    // Bounded: at most 200k calls, or until stopped.
    for (int i = 0; i < 200000 && !stop_; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + deadline_);
      helloworld::HelloRequest req;
      req.set_name("load");
      helloworld::HelloReply reply;
      auto st = stub_->SayHello(&ctx, req, &reply);
      std::lock_guard<std::mutex> lock(mu_);
      results_.push_back({st.ok(), st.error_code(), st.error_message(), backend_of(reply.message())});
      if (!st.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  std::unique_ptr<helloworld::Greeter::Stub> stub_;
  std::chrono::milliseconds deadline_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Result> results_;
  std::thread thread_;
};

// Calls started on all backends so far (GreeterStats).
uint64_t total_calls(const std::vector<Backend>& backends);

// Base fixture: a temp dir, `n` backends greeter-1..n, helpers; everything stops on TearDown.
class ProxyTest : public ::testing::Test {
 protected:
  void start_backends(int n);
  void start(const std::string& yaml) { proxy_ = start_proxy(dir_, yaml); }
  std::vector<std::string> endpoints() const;
  std::unique_ptr<helloworld::Greeter::Stub> stub() {
    return helloworld::Greeter::NewStub(make_channel(proxy_.target()));
  }

  std::string dir_ = make_temp_dir();
  std::vector<Backend> backends_;
  Proxy proxy_;
};

}  // namespace h2mesh_test
