#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"

namespace h2mesh::net {

class EventLoop;

// The outcome of one Transport::read or write.
struct IoResult {
  enum class Status : uint8_t {
    Done,        // `bytes` moved (a write may take fewer than offered)
    WouldBlock,  // nothing now; the handler hears again when there is
    Eof,         // read only: the peer finished sending
    Failed,      // the transport is unusable; last_error() says why
  };
  Status status;
  size_t bytes = 0;
};

// What a transport reports to its owner. Called on the loop's thread, from the loop (never
// from inside the owner's own call into the transport). The owner may shut the transport down
// from any of these; it must not delete it there (defer the delete to the end of the iteration).
class TransportHandler {
 public:
  virtual ~TransportHandler() = default;
  // A transport that was connecting is ready for bytes (the TCP connect finished; with TLS, the
  // handshake too), or failed to connect: `failure` is null on success. Reported once.
  virtual void on_transport_connected(const Error* failure) = 0;
  // `readable`: read() has something to say (bytes, end of stream or an error); reported again
  // in later iterations while that stays true. `writable`: there is room to write, reported
  // only while the owner asked for it with want_write(true).
  virtual void on_transport_ready(bool readable, bool writable) = 0;
};

// Who the peer proved to be: the SANs of the certificate it presented in a TLS handshake.
struct PeerIdentity {
  std::vector<std::string> uris;  // URI SANs, e.g. spiffe://cluster.local/ns/demo/sa/client
  std::vector<std::string> dns;   // DNS SANs
  bool verified = false;          // the chain was verified against the configured CA
};

// A byte stream to one peer: TCP in production (TcpTransport), an in-memory pair in tests
// (MemoryTransport), TLS later. Owned by one connection, used on its loop's thread only.
// The owner states intent (wants to write); the transport decides what it waits for, so an
// implementation whose read needs a write first (a TLS handshake or key update) can wait for
// writability while the owner only asked to read, and the other way round.
class Transport {
 public:
  virtual ~Transport() = default;  // closes what is still open; no report after this

  // Starts reporting to `handler` (not owned; must outlive the transport or shut it down).
  virtual void start(TransportHandler& handler) = 0;
  // True until on_transport_connected was reported (client side only).
  virtual bool connecting() const = 0;
  // Non-blocking. `len` > 0.
  virtual IoResult read(uint8_t* buf, size_t len) = 0;
  // After a short write or WouldBlock, the next write starts with the bytes that were not taken
  // (it may offer more after them): TLS may have encrypted them already, and sends those records
  // rather than encrypting the bytes again.
  virtual IoResult write(const uint8_t* data, size_t len) = 0;
  // Whether the owner has bytes waiting to be written (asks for on_transport_ready(_, true)).
  virtual void want_write(bool on) = 0;
  // Ends both directions now; the peer sees the end of the stream. No report follows.
  // Idempotent.
  virtual void shutdown() = 0;
  // Why the last read or write Failed.
  virtual Error last_error() const = 0;
  // The peer's certificate identity, once connected; null when it showed none (or without TLS).
  // Owned by the transport.
  virtual const PeerIdentity* peer_identity() const { return nullptr; }
};

// Opens client transports. Production connects over TCP (tcp_connector()); tests connect
// proxies to in-memory backends. Called on the loop's thread.
class Connector {
 public:
  virtual ~Connector() = default;
  // A transport that reports on_transport_connected once started, or an error when the
  // connect failed at once.
  virtual Result<std::unique_ptr<Transport>> connect(EventLoop& loop,
                                                     const config::SocketAddress& address) = 0;
};

// Non-blocking TCP connects with TCP_NODELAY. Stateless; shared by every thread.
Connector& tcp_connector();

}  // namespace h2mesh::net
