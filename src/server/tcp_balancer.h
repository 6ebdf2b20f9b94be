#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "net/event_loop.h"

namespace h2mesh::server {

// What a Kubernetes Service does: each new TCP connection goes to the next backend (round
// robin), and every byte of that connection follows it. Used by `h2mesh demo` to show the
// problem h2mesh solves; runs on its own thread.
class TcpBalancer {
 public:
  explicit TcpBalancer(std::vector<config::SocketAddress> backends);
  ~TcpBalancer();
  // Listens on 127.0.0.1 (port chosen by the kernel) and starts the thread; returns the port.
  Result<uint16_t> start();

 private:
  class Acceptor;
  class Pipe;
  std::vector<config::SocketAddress> backends_;
  net::EventLoop loop_;
  std::unique_ptr<Acceptor> acceptor_;
  std::thread thread_;
};

}  // namespace h2mesh::server
