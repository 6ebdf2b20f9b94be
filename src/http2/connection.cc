#include "http2/connection.h"

#include "common/log.h"

namespace h2mesh::http2 {
namespace {
// One read per readable connection per loop iteration: a large one, so that a stream of DATA
// costs few system calls (64 KiB -> 256 KiB: -11 % proxy CPU per MiB streamed). Pages of this
// per-thread buffer become resident only as far as reads fill it.
constexpr size_t kReadChunk = 256 * 1024;
// Stop pulling frames from the session once this much is waiting for the socket: beyond it the
// peers are held back by flow control instead of filling our memory.
constexpr size_t kOutHighWater = 64 * 1024;
thread_local uint8_t t_read_buf[kReadChunk];
}  // namespace

Connection::Connection(net::EventLoop& loop, std::unique_ptr<net::Transport> transport, Role role,
                       const SessionOptions& opts)
    : loop_(loop),
      transport_(std::move(transport)),
      session_(role, *this, opts),
      keepalive_timer_(loop, [this] { on_keepalive_timer(); }),
      connecting_(transport_->connecting()) {
  // Our SETTINGS go out with the first flush: after the connect (client), or after the client's
  // first bytes (server), so a non-HTTP/2 client's error reply is not preceded by binary frames.
  transport_->start(*this);
}

Connection::~Connection() = default;

void Connection::schedule_flush() {
  if (flush_scheduled_ || closed_ || connecting_) return;
  flush_scheduled_ = true;
  loop_.defer([this] { flush(); });
}

void Connection::close(const Error& why) {
  if (closed_) return;
  closed_ = true;
  keepalive_timer_.cancel();
  transport_->shutdown();
  on_closed(why);  // may defer_delete this; the object stays valid until the iteration ends
}

void Connection::on_transport_connected(const Error* failure) {
  if (closed_) return;
  if (failure) {
    close(*failure);
    return;
  }
  connecting_ = false;
  start_keepalive();
  on_connected();
  if (closed_) return;
  flush();
}

void Connection::on_transport_ready(bool readable, bool writable) {
  if (closed_) return;
  if (readable) handle_read();
  if (!closed_ && writable) flush();
}

void Connection::handle_read() {
  auto rv = transport_->read(t_read_buf, kReadChunk);
  switch (rv.status) {
    case net::IoResult::Status::Done: {
      last_read_ = loop_.now();
      if (close_after_flush_) return;  // discarding input while the error reply goes out
      auto received = session_.receive(t_read_buf, rv.bytes, loop_.now());
      if (!received) {
        on_receive_error(received.error());
        return;
      }
      schedule_flush();
      return;
    }
    case net::IoResult::Status::WouldBlock:
      return;
    case net::IoResult::Status::Eof:
      close(make_error(ErrorCode::Io, "connection closed by peer"));
      return;
    case net::IoResult::Status::Failed:
      close(transport_->last_error());
      return;
  }
}

void Connection::set_keepalive(Duration interval, Duration timeout, bool only_with_calls) {
  keepalive_interval_ = interval;
  keepalive_timeout_ = timeout;
  keepalive_only_with_calls_ = only_with_calls;
  start_keepalive();
}

void Connection::start_keepalive() {
  if (keepalive_interval_.count() <= 0 || connecting_ || closed_) {
    keepalive_timer_.cancel();
    return;
  }
  last_read_ = loop_.now();
  keepalive_timer_.arm(keepalive_interval_);
}

void Connection::on_keepalive_timer() {
  if (closed_ || close_after_flush_) return;
  const TimePoint now = loop_.now();
  if (session_.ping_outstanding()) {
    if (now - ping_sent_ >= keepalive_timeout_) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(keepalive_timeout_).count();
      LOG_INFO("keepalive: no PING ACK within %lldms; closing the connection",
               static_cast<long long>(ms));
      close(make_error(ErrorCode::DeadlineExceeded,
                       "keepalive: no PING ACK within " + std::to_string(ms) + "ms"));
      return;
    }
    keepalive_timer_.arm_at(ping_sent_ + keepalive_timeout_);
    return;
  }
  if (now - last_read_ < keepalive_interval_) {
    keepalive_timer_.arm_at(last_read_ + keepalive_interval_);  // the peer spoke meanwhile
    return;
  }
  bool calls = false;
  for_each_stream([&](int32_t) { calls = true; });
  if (keepalive_only_with_calls_ && !calls) {
    keepalive_timer_.arm(keepalive_interval_);
    return;
  }
  // gRPC servers close clients that send a third PING without data in between, unless five
  // minutes passed since the previous one. (Clients do not police the PINGs they receive.)
  constexpr auto kQuietPingInterval = std::chrono::minutes(5);
  if (session_.role() == Role::Client && session_.pings_without_data() >= 2 &&
      now - last_ping_ < kQuietPingInterval) {
    keepalive_timer_.arm_at(last_ping_ + kQuietPingInterval);
    return;
  }
  session_.submit_ping();
  ping_sent_ = last_ping_ = now;
  schedule_flush();
  keepalive_timer_.arm(keepalive_timeout_);
}

void Connection::on_receive_error(const Error& why) {
  LOG_DEBUG("closing connection: %s", why.message.c_str());
  close_with_goaway(H2Error::ProtocolError);
}

void Connection::close_with_goaway(H2Error code) {
  if (close_after_flush_) return;
  session_.terminate(static_cast<uint32_t>(code));
  close_after_flush_ = true;
  schedule_flush();
}

void Connection::write_raw_and_close(const void* data, size_t len) {
  out_.append(data, len);
  close_after_flush_ = true;
  raw_only_ = true;
  schedule_flush();
}

void Connection::flush() {
  flush_scheduled_ = false;
  if (closed_ || connecting_) return;
  for (;;) {
    if (out_.size() < kOutHighWater && !close_after_flush_) {
      auto rv = session_.produce(out_, kOutHighWater);
      if (!rv) {
        close(rv.error());
        return;
      }
    } else if (close_after_flush_ && !raw_only_ && out_.size() < kOutHighWater) {
      (void)session_.produce(out_, kOutHighWater);  // a pending GOAWAY, if any
    }
    if (out_.empty()) break;
    auto rv = transport_->write(out_.data(), out_.size());
    if (rv.status == net::IoResult::Status::WouldBlock) break;
    if (rv.status != net::IoResult::Status::Done) {
      close(transport_->last_error());
      return;
    }
    out_.drain(rv.bytes);
    if (!out_.empty()) break;  // the transport is full; wait until it is writable
  }
  out_.release_if_empty();
  transport_->want_write(!out_.empty());
  if (out_.empty()) {
    if (close_after_flush_) {
      close(make_error(ErrorCode::DownstreamProtocol, "closed after protocol error"));
    } else if (!session_.wants_read() && !session_.wants_write()) {
      close(make_error(ErrorCode::Ok, "session finished"));
    }
  }
}

}  // namespace h2mesh::http2
