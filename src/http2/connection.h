#pragma once

#include <cstdint>
#include <memory>

#include "common/buffer.h"
#include "common/result.h"
#include "http2/session.h"
#include "net/event_loop.h"
#include "net/transport.h"

namespace h2mesh::http2 {

// Plumbing shared by both directions: a net::Transport (TCP in production, in-memory in tests)
// driving a Session. Reads feed the session; writes are batched: schedule_flush() asks for one
// flush at the end of the loop iteration, so a burst of events costs one write per connection.
// Owned by its worker (downstream), its pool (upstream) or the health checker; deleted through
// defer_delete only.
class Connection : public net::TransportHandler, public SessionVisitor, public net::Deletable {
 public:
  // Takes ownership of `transport` and starts it. A transport that is still connecting (a
  // client's) gets the session's first bytes once it reports connected.
  Connection(net::EventLoop& loop, std::unique_ptr<net::Transport> transport, Role role,
             const SessionOptions& opts);
  ~Connection() override;

  Session& session() { return session_; }
  net::EventLoop& loop() { return loop_; }
  void schedule_flush();
  bool closed() const { return closed_; }
  // Closes now: the transport is shut, then the subclass's on_closed() runs once.
  void close(const Error& why);
  // HTTP/2 PING keepalive: after `interval` without a frame from the peer, a PING; no ACK within
  // `timeout` closes the connection (ErrorCode::DeadlineExceeded). With `only_with_calls`, idle
  // connections are not pinged (gRPC servers count such pings as abuse). In the client role at
  // most two PINGs go out without the peer sending HEADERS or DATA in between, then one per 5
  // minutes: what gRPC servers accept from a client. interval 0 turns it off.
  void set_keepalive(Duration interval, Duration timeout, bool only_with_calls);

 protected:
  // net::TransportHandler
  void on_transport_connected(const Error* failure) override;
  void on_transport_ready(bool readable, bool writable) override;
  // Called once when the transport is gone (EOF, error, protocol end, or close()).
  virtual void on_closed(const Error& why) = 0;
  // The transport connected (only for transports that were connecting).
  virtual void on_connected() {}
  // The peer sent bytes the session rejected. Default: GOAWAY if possible, then close.
  virtual void on_receive_error(const Error& why);
  // Ends the session with a GOAWAY carrying `code`, and closes once it is written.
  void close_with_goaway(H2Error code);
  // Queue raw bytes (e.g. an HTTP/1.1 error for a client that does not speak HTTP/2) and close
  // once they are written.
  void write_raw_and_close(const void* data, size_t len);

  net::EventLoop& loop_;
  std::unique_ptr<net::Transport> transport_;
  Session session_;

 private:
  void handle_read();
  void flush();
  void on_keepalive_timer();
  void start_keepalive();

  Buffer out_;
  net::Timer keepalive_timer_;
  Duration keepalive_interval_{0};
  Duration keepalive_timeout_{0};
  TimePoint last_read_{};
  TimePoint ping_sent_{};
  TimePoint last_ping_{};
  bool keepalive_only_with_calls_ = true;
  bool connecting_;
  bool flush_scheduled_ = false;
  bool closed_ = false;
  bool close_after_flush_ = false;
  bool raw_only_ = false;  // the bytes to write are not HTTP/2: no session output follows
};

}  // namespace h2mesh::http2
