#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cluster/host_set.h"
#include "common/random.h"
#include "net/event_loop.h"
#include "net/transport.h"

namespace h2mesh::cluster {

// Active health checking of one endpoint with the standard gRPC health protocol
// (grpc.health.v1.Health/Check over one persistent HTTP/2 connection). Runs on the main thread;
// reports each check's outcome, and the health transitions implied by the thresholds.
class HealthChecker {
 public:
  // `on_transition(healthy)` runs on the main thread when the endpoint crosses a threshold.
  // `connector` opens the probe's connection (a cluster's TLS); null: clear-text TCP.
  HealthChecker(net::EventLoop& loop, Random& random, const Host& host,
                const config::HealthCheck& settings, std::function<void(bool)> on_transition,
                std::shared_ptr<net::Connector> connector = nullptr);
  ~HealthChecker();

  bool healthy() const { return healthy_; }
  uint64_t checks() const { return checks_; }
  uint64_t failures() const { return failures_; }
  const std::string& last_failure() const { return last_failure_; }

  // The outcome of the check in progress (true: SERVING). Ignored when no check is running.
  void record(bool ok, const std::string& why);

 private:
  class Probe;
  void schedule_next();
  void start_check();
  void on_timeout();
  void drop_probe();

  net::EventLoop& loop_;
  Random& random_;
  Host host_;
  config::HealthCheck settings_;
  std::function<void(bool)> on_transition_;
  std::shared_ptr<net::Connector> connector_;
  net::Timer next_;
  net::Timer timeout_;
  std::unique_ptr<Probe> probe_;
  bool in_check_ = false;
  // Endpoints start healthy: a new endpoint takes calls at once, and health checks take it out
  // after unhealthy_threshold failures.
  bool healthy_ = true;
  uint32_t successes_in_row_ = 0;
  uint32_t failures_in_row_ = 0;
  uint64_t checks_ = 0;
  uint64_t failures_ = 0;
  std::string last_failure_;
};

// The serialized HealthCheckRequest{service} in a gRPC length-prefixed frame.
std::string health_request_frame(const std::string& service);
// Parses a framed HealthCheckResponse; returns its status field (1 = SERVING), or -1.
int health_response_status(const std::string& framed);

}  // namespace h2mesh::cluster
