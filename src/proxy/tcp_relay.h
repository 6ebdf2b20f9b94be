#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "common/time.h"
#include "config/config.h"
#include "net/event_loop.h"

namespace h2mesh::proxy {

// Counters of the relayed (non-HTTP/2) connections of one worker: plain integers, written only
// by that worker's loop; the caller owns them and sums them over workers.
struct RelayStats {
  uint64_t connections_total = 0;   // relays started (each connects to its destination)
  uint64_t connections_active = 0;  // relays whose sockets are open now
  uint64_t connect_failures = 0;    // refused, unreachable or timed out: the client was reset
  uint64_t bytes_to_upstream = 0;   // client → destination, as written to the destination
  uint64_t bytes_to_downstream = 0;  // destination → client, as written to the client
  uint64_t resets = 0;        // relays ended by a reset or error on one side, passed on as RST
  uint64_t idle_timeouts = 0;  // relays closed by the idle timeout

  void add(const RelayStats& o) {
    connections_total += o.connections_total;
    connections_active += o.connections_active;
    connect_failures += o.connect_failures;
    bytes_to_upstream += o.bytes_to_upstream;
    bytes_to_downstream += o.bytes_to_downstream;
    resets += o.resets;
    idle_timeouts += o.idle_timeouts;
  }
};

struct RelayOptions {
  Duration connect_timeout = std::chrono::seconds(1);
  Duration idle_timeout = Duration::zero();  // no byte either way for this long: close; 0: never
};

// Relays one accepted client connection to its destination as plain TCP, both ways, on the
// worker's loop: what the outbound listener does with a connection that is not HTTP/2.
//
// - Bytes: each direction reads at most kBufferBytes at a time into the thread's scratch buffer
//   and writes them on at once; what the receiver's socket does not take is kept (at most
//   kBufferBytes per direction, allocated only while held) and that direction stops reading
//   until it is written. So a slow reader holds the writer back through TCP itself and the
//   relay never holds more than 2 × kBufferBytes; epoll interest follows these states (no
//   wake-up for a side that cannot move). Order is kept, nothing is dropped while both sides
//   live.
// - Ends: an end of stream from one side is passed on as shutdown(SHUT_WR) to the other once
//   the bytes before it are written; the other direction goes on until it ends too. A reset or
//   error on one side (read, write, connect refused, unreachable or timed out) resets the other
//   (SO_LINGER 0, close), dropping the bytes held for it: both ends see an abort, as they would
//   have without the relay.
// - The client is not read while the connect is under way: its first bytes wait in its socket,
//   and a destination that speaks first reaches the client as soon as it is connected.
//
// Copy, not splice(2): a pipe pair per connection moves bytes without copying them to user
// space, but on this machine it saved only the relay thread's own CPU (0.38 vs 0.56 CPU s/GiB,
// 2 GiB streams on loopback), no throughput and no CPU for the process as a whole (0.90 vs 0.93:
// the receiver paid the copy instead), at four more file descriptors per relayed connection
// (bench/relay/relay_bench, bench/results/2026-12-06-relay.md).
//
// Loop thread only.
class TcpRelay final : public net::Deletable {
 public:
  static constexpr size_t kBufferBytes = 64 * 1024;  // per direction, at most

  // Takes `client_fd` (an accepted, connected socket; made non-blocking and TCP_NODELAY here)
  // and starts a non-blocking connect to `destination`. `stats` must outlive the relay.
  // `on_gone` runs once, from the loop (never from the constructor), when both sockets are
  // closed; the relay does nothing after it, and the owner may destroy it there with
  // EventLoop::defer_delete (not directly: the same loop iteration may still hold an event for
  // one of its sockets).
  TcpRelay(net::EventLoop& loop, int client_fd, const config::SocketAddress& destination,
           const RelayOptions& options, RelayStats& stats, std::function<void()> on_gone);
  // A relay destroyed while still open (the worker shutting down) resets both sides.
  ~TcpRelay() override;
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  // Bytes read from the client (the destination) that its peer did not take yet: at most
  // kBufferBytes each. For tests and debugging.
  size_t held_to_upstream() const { return to_upstream_.held_size - to_upstream_.held_off; }
  size_t held_to_downstream() const {
    return to_downstream_.held_size - to_downstream_.held_off;
  }

 private:
  struct Side final : net::IoHandler {
    TcpRelay* relay = nullptr;
    int fd = -1;
    uint32_t interest = 0;  // what is registered with the loop
    bool registered = false;
    // Both directions of the socket are shut (we sent our FIN, the peer's arrived): epoll
    // reports EPOLLHUP on every wait, whatever the interest.
    bool hung_up = false;
    void on_io(uint32_t events) override { relay->on_io(*this, events); }
  };
  // One direction: bytes read from `from`, written to `to`.
  struct Flow {
    Side* from = nullptr;
    Side* to = nullptr;
    uint64_t* bytes = nullptr;  // the stats counter of this direction
    std::unique_ptr<uint8_t[]> held;  // what `to` did not take yet; null when nothing is held
    size_t held_off = 0;
    size_t held_size = 0;
    bool eof = false;  // `from` ended its side
    bool shut = false;  // ... and `to` was told (shutdown SHUT_WR): this flow is over
  };
  enum class Step { Continue, Fail };

  void on_io(Side& side, uint32_t events);
  void on_connected();
  void on_timer();
  // Reads once from flow.from (when `readable`) and writes what is held or was read to flow.to.
  Step pump(Flow& flow, bool readable);
  Step flush_held(Flow& flow);
  void hold(Flow& flow, const uint8_t* data, size_t size);
  void update_interest(Side& side);
  uint32_t wanted_interest(const Side& side) const;
  // Both flows are over: close both sockets (their ends were passed on) and report.
  void finish();
  // An error on one side: reset both, count it, report.
  void abort(bool connect_failure);
  void close_sockets(bool reset);

  net::EventLoop& loop_;
  RelayStats& stats_;
  std::function<void()> on_gone_;
  RelayOptions options_;
  Side client_;
  Side upstream_;
  Flow to_upstream_;
  Flow to_downstream_;
  net::Timer timer_;  // connect timeout, then the idle timeout
  TimePoint last_activity_;
  bool connecting_ = true;
  bool open_ = true;  // sockets not closed yet
};

}  // namespace h2mesh::proxy
