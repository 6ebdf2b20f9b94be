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
      if (close_after_flush_) return;  // discarding input while the error reply goes out
      auto received = session_.receive(t_read_buf, rv.bytes);
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
