#include "net/memory_transport.h"

#include <sys/epoll.h>

#include <algorithm>

namespace h2mesh::net {

MemoryTransport::MemoryTransport(EventLoop& loop, size_t capacity, bool connecting)
    : loop_(loop), capacity_(capacity), connecting_(connecting) {}

MemoryTransport::Pair MemoryTransport::pair(EventLoop& client_loop, EventLoop& server_loop,
                                            size_t capacity) {
  Pair p{std::unique_ptr<MemoryTransport>(new MemoryTransport(client_loop, capacity, true)),
         std::unique_ptr<MemoryTransport>(new MemoryTransport(server_loop, capacity, false))};
  p.client->peer_ = p.server.get();
  p.server->peer_ = p.client.get();
  return p;
}

std::unique_ptr<MemoryTransport> MemoryTransport::unconnectable(EventLoop& loop,
                                                                std::optional<Error> why) {
  std::unique_ptr<MemoryTransport> t(new MemoryTransport(loop, 0, true));
  t->connect_failure_ = std::move(why);
  t->never_connects_ = !t->connect_failure_;
  return t;
}

MemoryTransport::~MemoryTransport() {
  shutdown();
  loop_.cancel_notify(this);
}

void MemoryTransport::start(TransportHandler& handler) {
  handler_ = &handler;
  started_ = true;
  schedule();
}

void MemoryTransport::schedule() {
  if (started_ && !stopped_) loop_.notify(this, EPOLLIN);
}

void MemoryTransport::on_io(uint32_t) {
  if (stopped_ || !handler_) return;
  if (connecting_) {
    if (never_connects_) return;
    connecting_ = false;
    if (connect_failure_) {
      handler_->on_transport_connected(&*connect_failure_);
      return;
    }
    handler_->on_transport_connected(nullptr);
    if (stopped_) return;
  }
  const bool r = readable();
  const bool w = writable();
  if (r || w) handler_->on_transport_ready(r, w);
  // Level-triggered, like epoll: what is still true is reported again next iteration.
  if (!stopped_ && (readable() || writable())) schedule();
}

IoResult MemoryTransport::read(uint8_t* buf, size_t len) {
  if (stopped_ || stalled_) return {IoResult::Status::WouldBlock};
  if (inbox_.empty()) {
    if (!peer_gone_) return {IoResult::Status::WouldBlock};
    eof_read_ = true;
    return {IoResult::Status::Eof};
  }
  size_t n = std::min(len, inbox_.size());
  std::copy_n(inbox_.data(), n, buf);
  inbox_.drain(n);
  inbox_.release_if_empty();
  if (peer_ && peer_->want_write_) peer_->schedule();  // room again
  return {IoResult::Status::Done, n};
}

IoResult MemoryTransport::write(const uint8_t* data, size_t len) {
  if (stopped_ || !peer_) {
    error_ =
        make_error(ErrorCode::Io, stopped_ ? "transport shut down" : "connection reset by peer");
    return {IoResult::Status::Failed};
  }
  if (connecting_) return {IoResult::Status::WouldBlock};
  size_t room = peer_->capacity_ - std::min(peer_->capacity_, peer_->inbox_.size());
  size_t n = std::min(len, room);
  if (n == 0) return {IoResult::Status::WouldBlock};
  peer_->inbox_.append(data, n);
  peer_->schedule();
  return {IoResult::Status::Done, n};
}

void MemoryTransport::want_write(bool on) {
  want_write_ = on;
  if (on && writable()) schedule();
}

void MemoryTransport::set_stalled(bool stalled) {
  stalled_ = stalled;
  if (!stalled_) {
    schedule();
    if (peer_ && peer_->want_write_) peer_->schedule();
  }
}

void MemoryTransport::lose_peer() {
  peer_ = nullptr;
  peer_gone_ = true;
  schedule();  // the end of the stream is news; so is the failure of a pending write
}

void MemoryTransport::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  loop_.cancel_notify(this);
  if (peer_) peer_->lose_peer();
  peer_ = nullptr;
}

}  // namespace h2mesh::net
