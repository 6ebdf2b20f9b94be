#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/time.h"

namespace h2mesh::grpc {

enum class StatusCode : int {
  Ok = 0,
  Cancelled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
};
constexpr int kMaxStatusCode = 16;

// "OK", "UNAVAILABLE", ...; "UNKNOWN_CODE" outside 0..16.
const char* status_name(int code);

// The one table that turns a proxy error into the status the client sees.
StatusCode status_for_error(ErrorCode code);

// grpc-timeout: 1..8 ASCII digits and a unit H M S m u n. nullopt when malformed; then `why`,
// when given, points to a static description of what is wrong ("has more than 8 digits", ...),
// for the answer to the client and the log.
std::optional<Duration> parse_timeout(std::string_view value, const char** why = nullptr);
// Shortest exact-or-rounded-up encoding that fits 8 digits.
std::string format_timeout(Duration d);

// grpc-message is percent-encoded (space and printable ASCII but '%' pass through).
std::string encode_message(std::string_view message);
// A grpc-message as received, made safe to relay: bytes outside 0x20..0x7e (which a conforming
// sender would have percent-encoded) are percent-encoded; the rest, '%' included, stays. False
// when nothing needed it (`*out` untouched).
bool escape_raw_message_bytes(std::string_view message, std::string* out);

// Parses a grpc-status header value; nullopt when not a non-negative integer.
std::optional<int> parse_status(std::string_view value);

}  // namespace h2mesh::grpc
