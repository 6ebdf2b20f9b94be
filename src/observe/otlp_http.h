#pragma once

// OTLP/HTTP export requests (POST, application/x-protobuf) over plain HTTP/1.1, on the exporter
// thread only. One connection is kept alive from one batch to the next; every wait (resolve
// excepted) is bounded by the timeout and broken off when `wake_fd` becomes readable (the
// exporter is being stopped).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace h2mesh::observe {

struct OtlpTarget {
  std::string host;
  uint16_t port = 4318;
  std::string path = "/v1/traces";
};

struct OtlpAnswer {
  int status = 0;      // HTTP status; 0: no answer (see error)
  std::string error;   // why there was no answer
  std::chrono::milliseconds retry_after{0};  // the receiver's Retry-After, in seconds, if any
  bool stopped = false;  // wake_fd fired
};

// What an HTTP/1.1 response head says: status, Retry-After, and how its body ends.
struct ResponseHead {
  int status = 0;
  std::chrono::milliseconds retry_after{0};
  std::optional<size_t> content_length;
  bool chunked = false;  // Transfer-Encoding: chunked
  bool close = false;    // the connection ends after this answer (Connection: close, HTTP/1.0)
};

// Parses `head` (up to and including the blank line). False when it does not start with a status
// line. Exposed for tests.
bool parse_response_head(std::string_view head, ResponseHead* out);

// Where a chunked body that starts at `body` ends (the bytes it takes, trailers included), 0 when
// more bytes are needed, nullopt when it is not valid chunked encoding. Exposed for tests.
std::optional<size_t> chunked_body_size(std::string_view body);

class OtlpClient {
 public:
  explicit OtlpClient(OtlpTarget target) : target_(std::move(target)) {}
  ~OtlpClient() { disconnect(); }
  OtlpClient(const OtlpClient&) = delete;
  OtlpClient& operator=(const OtlpClient&) = delete;

  // Sends `body` on the kept connection, or a new one. A kept connection that the receiver
  // closed while idle (seen before sending, or as an end without a byte of answer) is replaced
  // once, within the same timeout: the receiver never saw that request.
  OtlpAnswer post(std::string_view body, std::chrono::milliseconds timeout, int wake_fd);

  // Connections opened so far.
  uint64_t connections() const { return connections_; }

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  bool connect(Deadline deadline, int wake_fd, OtlpAnswer* answer);
  // One request and its whole answer on fd_. *closed_unanswered: the connection ended (closed or
  // reset) before a byte of answer.
  OtlpAnswer exchange(std::string_view body, Deadline deadline, int wake_fd,
                      bool* closed_unanswered);
  void disconnect();

  const OtlpTarget target_;
  int fd_ = -1;
  uint64_t connections_ = 0;
  std::string request_;  // reused
  std::string in_;       // reused
};

}  // namespace h2mesh::observe
