#pragma once

#include <cstdint>

#include "net/event_loop.h"
#include "net/transport.h"

namespace h2mesh::net {

// A transport over a non-blocking TCP (or Unix) stream socket, registered on the loop's epoll.
// What production connections use. The extra cost over using the socket directly is one
// virtual call per read, write and readiness event.
class TcpTransport final : public Transport, private IoHandler {
 public:
  // Takes ownership of `fd`. With `connecting`, the socket's non-blocking connect is under way
  // and its completion is reported as on_transport_connected.
  TcpTransport(EventLoop& loop, int fd, bool connecting);
  ~TcpTransport() override;
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  void start(TransportHandler& handler) override;
  bool connecting() const override { return connecting_; }
  IoResult read(uint8_t* buf, size_t len) override;
  IoResult write(const uint8_t* data, size_t len) override;
  void want_write(bool on) override;
  void shutdown() override;
  Error last_error() const override;

  int fd() const { return fd_; }

 private:
  void on_io(uint32_t events) override;
  uint32_t interest() const;

  EventLoop& loop_;
  int fd_;
  TransportHandler* handler_ = nullptr;
  int errno_ = 0;  // of the last Failed read or write
  bool connecting_;
  bool want_write_ = false;
  bool registered_ = false;  // in the loop's epoll set
};

}  // namespace h2mesh::net
