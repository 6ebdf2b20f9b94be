#pragma once

// The little HTTP/1.1 a Kubernetes API client needs: GET requests, and replies framed by
// Content-Length, chunked transfer encoding (watch streams) or the connection's end. Pure byte
// processing, no I/O, so framing edge cases are unit-tested without sockets.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace h2mesh::discovery::k8s {

// Percent-encodes everything but RFC 3986 unreserved characters (for query values).
std::string url_encode(std::string_view s);

// A GET request for `target` (path and query) with `Authorization: Bearer` when `token` is not
// empty. `host` is the Host header value (host:port, IPv6 in brackets).
std::string format_get(const std::string& host, const std::string& target,
                       const std::string& token);

// Incremental reader of one HTTP/1.1 response. reset() prepares it for the next response on a
// kept-alive connection.
class HttpResponseReader {
 public:
  static constexpr size_t kMaxHeaderBytes = 64 * 1024;

  // Consumes bytes and appends the decoded body (de-chunked) to *body. Returns how many bytes
  // were consumed: fewer than given only once the response is complete (the rest is not part of
  // it). An error means the bytes are not HTTP/1.1.
  Result<size_t> feed(std::string_view bytes, std::string* body);
  // The peer closed the connection: true when that ends a body delimited by the close.
  bool finish_on_close();
  void reset() { *this = HttpResponseReader(); }

  bool headers_done() const { return state_ > State::Headers; }
  bool complete() const { return state_ == State::Done; }
  int status() const { return status_; }
  const std::string& reason() const { return reason_; }
  // The first value of a header (name in lower case), if present.
  std::optional<std::string> header(std::string_view name) const;
  // Whether the connection may carry another request once this response is complete.
  bool keep_alive() const { return keep_alive_; }

 private:
  enum class State {
    Headers,
    Length,
    UntilClose,
    ChunkSize,
    ChunkData,
    ChunkDataEnd,
    Trailers,
    Done
  };

  Result<void> parse_head(std::string_view head);
  Result<size_t> feed_body(std::string_view bytes, std::string* body);

  State state_ = State::Headers;
  std::string pending_;  // header or chunk-size bytes not yet complete
  int status_ = 0;
  std::string reason_;
  std::vector<std::pair<std::string, std::string>> headers_;
  bool keep_alive_ = true;
  size_t remaining_ = 0;  // of the Content-Length body or the current chunk
};

// Splits a byte stream into '\n'-terminated lines (a watch stream: one JSON event per line,
// whose chunks need not line up with events).
class LineBuffer {
 public:
  void append(std::string_view bytes) { buffer_.append(bytes.data(), bytes.size()); }
  // The next complete line without its "\n" (and "\r"), or nullopt.
  std::optional<std::string> next();
  // Bytes of an unfinished line.
  size_t pending() const { return buffer_.size() - start_; }
  void clear() {
    buffer_.clear();
    start_ = 0;
  }

 private:
  std::string buffer_;
  size_t start_ = 0;
};

}  // namespace h2mesh::discovery::k8s
