#pragma once

// One OTLP/HTTP export request (POST, application/x-protobuf) over a plain blocking socket, on
// the exporter thread only. Every wait (resolve excepted) is bounded by the timeout and broken
// off when `wake_fd` becomes readable (the exporter is being stopped).

#include <chrono>
#include <cstdint>
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

OtlpAnswer post_otlp(const OtlpTarget& target, std::string_view body,
                     std::chrono::milliseconds timeout, int wake_fd);

// The status and Retry-After of an HTTP/1.1 response head; exposed for tests. False when `head`
// does not start with a status line.
bool parse_response_head(std::string_view head, int* status, std::chrono::milliseconds* retry_after);

}  // namespace h2mesh::observe
