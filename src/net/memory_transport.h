#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "common/buffer.h"
#include "net/event_loop.h"
#include "net/transport.h"

namespace h2mesh::net {

// One end of an in-memory byte stream, for tests that drive clients, proxy and backends on
// simulated time without sockets. Behaves like a non-blocking socket: each end has a bounded
// receive buffer (a write takes what fits and the writer hears when room frees up), readiness
// is reported in the next loop iteration (through EventLoop::notify, level-triggered like
// epoll), and destroying or shutting down one end is seen by the other as the end of the
// stream, then as a failed write. Both ends must be used on one thread (their loops may differ).
class MemoryTransport final : public Transport, private IoHandler {
 public:
  struct Pair {
    std::unique_ptr<MemoryTransport> client;  // connecting: reports connected when started
    std::unique_ptr<MemoryTransport> server;  // accepted
  };
  static constexpr size_t kDefaultCapacity = 256 * 1024;

  // `capacity`: bytes one end may have written that the other has not read yet.
  static Pair pair(EventLoop& client_loop, EventLoop& server_loop,
                   size_t capacity = kDefaultCapacity);
  // A client end whose connect fails with `why` once started (a refused connect), or, with no
  // `why`, never completes (a black-holed address).
  static std::unique_ptr<MemoryTransport> unconnectable(EventLoop& loop, std::optional<Error> why);

  ~MemoryTransport() override;
  MemoryTransport(const MemoryTransport&) = delete;
  MemoryTransport& operator=(const MemoryTransport&) = delete;

  void start(TransportHandler& handler) override;
  bool connecting() const override { return connecting_; }
  IoResult read(uint8_t* buf, size_t len) override;
  IoResult write(const uint8_t* data, size_t len) override;
  void want_write(bool on) override;
  void shutdown() override;
  Error last_error() const override { return error_; }

  // Test controls. A stalled end neither reads nor reports what arrives, like a process that
  // was stopped (SIGSTOP) or a peer behind a black hole: its writer fills the buffer and blocks.
  void set_stalled(bool stalled);
  size_t unread() const { return inbox_.size(); }
  bool peer_gone() const { return peer_gone_; }

 private:
  MemoryTransport(EventLoop& loop, size_t capacity, bool connecting);
  void on_io(uint32_t events) override;
  void schedule();  // report our state in the next iteration of our loop
  bool readable() const { return !stalled_ && (!inbox_.empty() || (peer_gone_ && !eof_read_)); }
  bool writable() const { return want_write_ && peer_ && peer_->inbox_.size() < peer_->capacity_; }
  void lose_peer();

  EventLoop& loop_;
  const size_t capacity_;
  TransportHandler* handler_ = nullptr;
  MemoryTransport* peer_ = nullptr;
  Buffer inbox_;
  std::optional<Error> connect_failure_;
  Error error_;
  bool connecting_;
  bool never_connects_ = false;
  bool started_ = false;
  bool stopped_ = false;
  bool want_write_ = false;
  bool peer_gone_ = false;  // the peer ended: what is in inbox_ is all that will come
  bool eof_read_ = false;
  bool stalled_ = false;
};

}  // namespace h2mesh::net
