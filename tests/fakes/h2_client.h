#pragma once

// A blocking HTTP/2 client for tests that must send what gRPC libraries refuse to (a malformed
// grpc-timeout, ...): one request on its own loopback connection, driven by h2mesh's own
// http2::Session in the client role. Link h2mesh_http2. Every wait is bounded (5 s per read).
// DATA received is never returned to the windows: replies must stay under 1 MiB.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "http2/session.h"

namespace h2mesh_test_fakes {

struct H2Reply {
  std::vector<std::pair<std::string, std::string>> headers;   // the first header block
  std::vector<std::pair<std::string, std::string>> trailers;  // a second one, if any
  std::string body;
  bool headers_ended_stream = false;  // trailers-only: the first block carried END_STREAM
  bool closed = false;                // the stream closed (normally or by RST_STREAM)
  uint32_t close_code = 0;            // its RST_STREAM code; 0 after a normal end or NO_ERROR
  std::string error;                  // the connection failed or the reply took too long

  // The first value of `name` in the headers, then in the trailers; empty if absent.
  std::string header(const std::string& name) const {
    for (const auto& [n, v] : headers)
      if (n == name) return v;
    for (const auto& [n, v] : trailers)
      if (n == name) return v;
    return "";
  }
};

// Sends `headers` (pseudo-headers first) on 127.0.0.1:`port`. With `end_request` the request
// body is `body` and ends; without it, the body stays open (nothing is sent after the headers),
// as from a client still streaming, and the wait ends when the stream closes.
inline H2Reply h2_request(uint16_t port, const std::vector<std::pair<std::string, std::string>>& headers,
                          const std::string& body, bool end_request,
                          std::chrono::seconds within = std::chrono::seconds(5)) {
  class Visitor final : public h2mesh::http2::SessionVisitor {
   public:
    Visitor(H2Reply& reply, const std::string& body, bool end_request)
        : reply_(reply), body_(body), end_request_(end_request) {}
    void on_stream_open(int32_t) override {}
    void on_header(int32_t, void*, std::string_view name, std::string_view value) override {
      (blocks_ == 0 ? reply_.headers : reply_.trailers).emplace_back(name, value);
    }
    void on_headers_end(int32_t, void*, h2mesh::http2::HeadersKind, bool end_stream) override {
      if (blocks_++ == 0) reply_.headers_ended_stream = end_stream;
    }
    void on_headers_too_large(int32_t, void*, h2mesh::http2::HeadersKind,
                              const h2mesh::http2::HeaderOverflow&) override {
      reply_.error = "response headers over the limit";
    }
    void for_each_stream(const std::function<void(int32_t)>& fn) override {
      if (!reply_.closed) fn(1);  // the one request of this client: stream 1
    }
    void on_data(int32_t, void*, const uint8_t* data, size_t len) override {
      reply_.body.append(reinterpret_cast<const char*>(data), len);
    }
    void on_data_end(int32_t, void*) override {}
    void on_stream_close(int32_t, void*, uint32_t code) override {
      reply_.closed = true;
      reply_.close_code = code;
    }
    void on_goaway(int32_t, uint32_t code) override {
      if (!reply_.closed) reply_.error = "GOAWAY " + std::to_string(code);
    }
    void on_remote_settings() override {}
    h2mesh::http2::BodyChunk read_body(int32_t, void*, size_t max_length) override {
      if (!end_request_) return {0, false, true, false};  // never more: the client "streams"
      size_t n = std::min(max_length, body_.size() - sent_);
      return {n, sent_ + n == body_.size(), false, false};
    }
    void write_body(int32_t, void*, size_t length, h2mesh::Buffer& out) override {
      out.append(body_.data() + sent_, length);
      sent_ += length;
    }

   private:
    H2Reply& reply_;
    const std::string& body_;
    bool end_request_;
    size_t sent_ = 0;
    int blocks_ = 0;
  };

  H2Reply reply;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    ::close(fd);
    reply.error = "connect failed";
    return reply;
  }
  Visitor visitor(reply, body, end_request);
  h2mesh::http2::Session session(h2mesh::http2::Role::Client, visitor, {});
  std::vector<h2mesh::http2::HeaderRef> refs;
  for (const auto& [n, v] : headers) refs.push_back({n, v});
  auto id = session.submit_request(refs, /*has_body=*/!end_request || !body.empty(), nullptr);
  if (!id.ok()) {
    ::close(fd);
    reply.error = "submit_request: " + id.error().message;
    return reply;
  }
  const auto deadline = std::chrono::steady_clock::now() + within;
  h2mesh::Buffer out;
  while (!reply.closed && reply.error.empty()) {
    if (std::chrono::steady_clock::now() > deadline) {
      reply.error = "no complete reply in time";
      break;
    }
    out.clear();
    if (!session.produce(out, 1 << 20).ok()) {
      reply.error = "session error while sending";
      break;
    }
    if (!out.empty() &&
        ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
      reply.error = "send failed";
      break;
    }
    uint8_t buf[16384];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n <= 0) {
      reply.error = "connection closed before the reply was complete";
      break;
    }
    auto rv = session.receive(buf, static_cast<size_t>(n));
    if (!rv.ok()) reply.error = "session error: " + rv.error().message;
  }
  ::close(fd);
  return reply;
}

}  // namespace h2mesh_test_fakes
