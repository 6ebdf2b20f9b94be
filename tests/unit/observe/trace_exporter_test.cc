// The exporter thread against a loopback HTTP receiver in the test: batches leave the rings, the
// counters say what became of them, a full ring drops, a stopped exporter counts what it held.

#include "observe/trace_exporter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "observe/trace_counters.h"
#include "observe/trace_observer.h"

namespace h2mesh::observe {
namespace {

// Answers every POST with `status`; keeps the bodies. How it treats the connection afterwards:
enum class Keep {
  Alive,            // waits for the next request on it
  SilentClose,      // closes it without saying so (an idle timeout that struck at once)
  ConnectionClose,  // says "Connection: close", then closes it
  // Keeps it, but closes it unanswered when the second request arrives on it (an idle timeout
  // that struck as the request left); then keeps connections again.
  DropSecondRequest,
  // Sends the head and part of the body it announced, then nothing (the exporter's timeout
  // ends the exchange; the status it read stands).
  ShortBody,
};

class Receiver {
 public:
  explicit Receiver(int status, Keep keep = Keep::Alive, bool chunked = false)
      : status_(status), keep_(keep), chunked_(chunked) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] { run(); });
  }
  ~Receiver() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    {
      std::lock_guard<std::mutex> l(conn_mu_);
      if (conn_ >= 0) ::shutdown(conn_, SHUT_RDWR);
    }
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  size_t requests() {
    std::lock_guard<std::mutex> l(mu_);
    return bodies_.size();
  }
  std::string body(size_t i) {
    std::lock_guard<std::mutex> l(mu_);
    return bodies_[i];
  }
  size_t connections() const { return connections_; }

 private:
  void run() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++connections_;
      {
        std::lock_guard<std::mutex> l(conn_mu_);
        conn_ = c;
      }
      serve(c);
      std::lock_guard<std::mutex> l(conn_mu_);  // the destructor shuts down only a live one
      conn_ = -1;
      ::close(c);
    }
  }
  // Requests on one connection, until it ends or (per keep_) after the first answer.
  void serve(int c) {
    std::string in;
    char buf[8192];
    for (;;) {
      size_t head = in.find("\r\n\r\n");
      while (head == std::string::npos || in.size() < head + 4 + content_length(in)) {
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
        head = in.find("\r\n\r\n");
      }
      const size_t end = head + 4 + content_length(in);
      if (keep_ == Keep::DropSecondRequest && ++served_ == 2) return;
      {
        std::lock_guard<std::mutex> l(mu_);
        bodies_.push_back(in.substr(head + 4, end - head - 4));
      }
      in.erase(0, end);
      std::string answer = "HTTP/1.1 " + std::to_string(status_) + " X\r\n";
      if (keep_ == Keep::ConnectionClose) answer += "Connection: close\r\n";
      // An empty ExportTraceServiceResponse would be 0 bytes; these stand for a partial_success.
      answer += chunked_                     ? "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
                : keep_ == Keep::ShortBody ? "Content-Length: 100\r\n\r\nabcde"
                                           : "Content-Length: 5\r\n\r\nabcde";
      (void)!::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      if (keep_ != Keep::Alive && keep_ != Keep::DropSecondRequest && keep_ != Keep::ShortBody)
        return;
    }
  }
  static size_t content_length(const std::string& in) {
    const size_t cl = in.find("Content-Length: ");
    return cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16));
  }

  int status_;
  Keep keep_;
  bool chunked_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex conn_mu_;
  int conn_ = -1;  // the connection being served, under conn_mu_
  std::atomic<size_t> connections_{0};
  int served_ = 0;  // receiver thread only
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

config::Tracing settings(uint16_t port, uint32_t queue = 64) {
  config::Tracing t;
  t.enabled = true;
  t.otlp_host = "127.0.0.1";
  t.otlp_port = port;
  t.otlp_endpoint = "http://127.0.0.1:" + std::to_string(port) + "/v1/traces";
  t.batch_interval = std::chrono::milliseconds(10);
  t.export_timeout = std::chrono::milliseconds(300);
  t.queue_size = queue;
  t.batch_size = queue;
  return t;
}

void push(SpanRing& ring, const std::string& name) {
  SpanRecord* s = ring.begin_push();
  ASSERT_NE(s, nullptr);
  s->span_id = {1, 2, 3, 4, 5, 6, 7, 8};
  s->name = name;
  ring.commit_push();
}

bool wait_until(const std::function<bool()>& pred) {
  for (int i = 0; i < 1000; ++i) {  // at most 10 s
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(TraceExporterTest, SpansOfEveryWorkerAreExportedAndCounted) {
  Receiver receiver(200);
  TraceCounters& c = trace_counters();
  const uint64_t exported = c.spans_exported, ok = c.requests_ok;
  TraceExporter exporter(settings(receiver.port()), 2);
  exporter.start();
  push(*exporter.ring(0), "from-worker-0");
  push(*exporter.ring(1), "from-worker-1");
  push(*exporter.ring(1), "from-worker-1");
  ASSERT_TRUE(wait_until([&] { return c.spans_exported >= exported + 3; }));
  EXPECT_GE(c.requests_ok, ok + 1);
  EXPECT_EQ(exporter.ring(0)->size(), 0u);
  EXPECT_EQ(exporter.ring(1)->size(), 0u);
  std::string all;
  for (size_t i = 0; i < receiver.requests(); ++i) all += receiver.body(i);
  EXPECT_NE(all.find("from-worker-0"), std::string::npos);
  EXPECT_NE(all.find("from-worker-1"), std::string::npos);
}

// Batches share one connection while the receiver keeps it; one that closes it after each
// answer (saying so or not) costs a connection per batch but no failed export: a kept connection
// found closed is replaced before the request is sent, and one that ends without a byte of
// answer once the request was sent is replaced and the request sent again. An answer whose body
// never ends (the timeout) still counts by its status, and its connection is not kept.
TEST(TraceExporterTest, OneConnectionCarriesEveryBatchWhileTheReceiverKeepsIt) {
  struct Case {
    Keep keep;
    bool chunked;
    size_t connections;
  };
  constexpr int kBatches = 5;
  for (const Case& k : {Case{Keep::Alive, false, 1}, Case{Keep::Alive, true, 1},
                        Case{Keep::ConnectionClose, false, kBatches},
                        Case{Keep::SilentClose, false, kBatches},
                        Case{Keep::DropSecondRequest, false, 2},
                        Case{Keep::ShortBody, false, kBatches}}) {
    SCOPED_TRACE(static_cast<int>(k.keep) * 10 + k.chunked);
    Receiver receiver(200, k.keep, k.chunked);
    TraceCounters& c = trace_counters();
    const uint64_t exported = c.spans_exported, error = c.requests_error, ok = c.requests_ok,
                   opened = c.connections;
    TraceExporter exporter(settings(receiver.port()), 1);
    exporter.start();
    for (int i = 0; i < kBatches; ++i) {
      push(*exporter.ring(0), "batch-" + std::to_string(i));
      ASSERT_TRUE(wait_until([&] { return c.spans_exported >= exported + i + 1; }));
      // Long enough for a receiver's close to reach the exporter before the next batch.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(c.requests_ok, ok + kBatches);
    EXPECT_EQ(c.requests_error, error) << "no export failed on a closed connection";
    EXPECT_EQ(receiver.requests(), static_cast<size_t>(kBatches));
    EXPECT_EQ(receiver.connections(), k.connections);
    EXPECT_EQ(c.connections, opened + k.connections);
  }
}

TEST(TraceExporterTest, RejectedBatchCountsFailedWithoutRetry) {
  Receiver receiver(400);
  TraceCounters& c = trace_counters();
  const uint64_t failed = c.spans_failed, rejected = c.requests_rejected;
  TraceExporter exporter(settings(receiver.port()), 1);
  exporter.start();
  push(*exporter.ring(0), "rejected");
  ASSERT_TRUE(wait_until([&] { return c.spans_failed >= failed + 1; }));
  EXPECT_EQ(c.requests_rejected, rejected + 1);
  EXPECT_EQ(receiver.requests(), 1u);  // a 400 is final
}

TEST(TraceExporterTest, UnavailableReceiverIsRetriedThenCountedFailed) {
  Receiver receiver(503);
  TraceCounters& c = trace_counters();
  const uint64_t failed = c.spans_failed, retryable = c.requests_retryable;
  TraceExporter exporter(settings(receiver.port()), 1);
  exporter.start();
  push(*exporter.ring(0), "unavailable");
  ASSERT_TRUE(wait_until([&] { return c.spans_failed >= failed + 1; }));
  EXPECT_EQ(c.requests_retryable, retryable + 4);  // every try of the batch
  EXPECT_EQ(receiver.requests(), 4u);
}

TEST(TraceExporterTest, FullRingDropsAndCountsInsteadOfWaiting) {
  TraceCounters& c = trace_counters();
  const uint64_t dropped = c.spans_dropped;
  auto ring = std::make_shared<SpanRing>(16);
  TraceObserver observer(ring, 1.0);
  proxy::CallEvent call;
  call.trace.valid = true;
  call.trace.sampled = true;
  call.trace.span_id = {1, 1, 1, 1, 1, 1, 1, 1};
  for (int i = 0; i < 20; ++i) observer.on_call_end(call);  // nobody reads the ring
  EXPECT_EQ(ring->size(), 16u);
  EXPECT_EQ(c.spans_dropped, dropped + 4);
  call.trace.sampled = false;
  observer.on_call_end(call);  // unsampled: nothing recorded, nothing dropped
  EXPECT_EQ(c.spans_dropped, dropped + 4);
}

TEST(TraceExporterTest, StoppedExporterCountsWhatItHeldAsDropped) {
  TraceCounters& c = trace_counters();
  const uint64_t dropped = c.spans_dropped;
  {
    // Port 9 on loopback: nothing listens; the exporter is never started.
    TraceExporter exporter(settings(9), 1);
    push(*exporter.ring(0), "never-sent");
    push(*exporter.ring(0), "never-sent");
  }
  EXPECT_EQ(c.spans_dropped, dropped + 2);
}

}  // namespace
}  // namespace h2mesh::observe
