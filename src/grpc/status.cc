#include "grpc/status.h"

#include <charconv>

namespace h2mesh::grpc {

const char* status_name(int code) {
  static const char* const kNames[] = {
      "OK",           "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",    "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",         "UNAVAILABLE",    "DATA_LOSS",
      "UNAUTHENTICATED"};
  if (code < 0 || code > kMaxStatusCode) return "UNKNOWN_CODE";
  return kNames[code];
}

StatusCode status_for_error(ErrorCode code) {
  switch (code) {
    case ErrorCode::Ok: return StatusCode::Ok;
    case ErrorCode::NoRoute: return StatusCode::Unimplemented;
    case ErrorCode::DeadlineExceeded: return StatusCode::DeadlineExceeded;
    case ErrorCode::InvalidArgument:
    case ErrorCode::PermissionDenied:  // a local tool's error, never a call's
    case ErrorCode::DownstreamProtocol: return StatusCode::Internal;
    case ErrorCode::ConnectFailed:
    case ErrorCode::ConnectTimeout:
    case ErrorCode::NoHealthyEndpoint:
    case ErrorCode::UpstreamReset:
    case ErrorCode::UpstreamGoaway:
    case ErrorCode::UpstreamProtocol:
    case ErrorCode::Draining:
    case ErrorCode::Overloaded:  // proxy-side overload: UNAVAILABLE, as clients may retry it
    case ErrorCode::Io:
    case ErrorCode::Internal: return StatusCode::Unavailable;
  }
  return StatusCode::Unknown;
}

std::optional<Duration> parse_timeout(std::string_view v, const char** why) {
  auto malformed = [why](const char* reason) -> std::optional<Duration> {
    if (why) *why = reason;
    return std::nullopt;
  };
  if (v.empty()) return malformed("is empty");
  int64_t unit_ns;
  switch (v.back()) {
    case 'H': unit_ns = int64_t{3600} * 1000000000; break;
    case 'M': unit_ns = int64_t{60} * 1000000000; break;
    case 'S': unit_ns = 1000000000; break;
    case 'm': unit_ns = 1000000; break;
    case 'u': unit_ns = 1000; break;
    case 'n': unit_ns = 1; break;
    default: return malformed("does not end with a unit (H, M, S, m, u or n)");
  }
  const std::string_view digits = v.substr(0, v.size() - 1);
  if (digits.empty()) return malformed("has no digits before its unit");
  // The spec's TimeoutValue is at most 8 digits: 9 digits could overflow a 32-bit peer.
  if (digits.size() > 8) return malformed("has more than 8 digits");
  uint64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return malformed("has a character other than a digit before its unit");
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  // Capped at 100 years: "no practical deadline", and now() + timeout cannot overflow.
  constexpr int64_t kMaxNs = int64_t{100} * 365 * 24 * 3600 * 1000000000;
  if (n > static_cast<uint64_t>(kMaxNs / unit_ns)) return Duration(kMaxNs);
  return Duration(static_cast<int64_t>(n) * unit_ns);
}

std::string format_timeout(Duration d) {
  constexpr int64_t kMax = 99999999;
  int64_t ns = d.count() < 1 ? 1 : d.count();
  struct Unit {
    int64_t ns;
    char c;
  };
  static constexpr Unit kUnits[] = {{1, 'n'},
                                    {1000, 'u'},
                                    {1000000, 'm'},
                                    {1000000000, 'S'},
                                    {60LL * 1000000000, 'M'},
                                    {3600LL * 1000000000, 'H'}};
  for (const Unit& u : kUnits) {
    int64_t v = ns / u.ns + (ns % u.ns != 0);  // round up: never shorten the caller's deadline
    if (v <= kMax) return std::to_string(v) + u.c;
  }
  return std::to_string(kMax) + "H";
}

bool escape_raw_message_bytes(std::string_view message, std::string* out) {
  static const char kHex[] = "0123456789ABCDEF";
  bool raw = false;
  for (unsigned char c : message) raw = raw || c < 0x20 || c > 0x7e;
  if (!raw) return false;
  out->clear();
  for (unsigned char c : message) {
    if (c >= 0x20 && c <= 0x7e) {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
  return true;
}

std::string encode_message(std::string_view message) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (unsigned char c : message) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<int> parse_status(std::string_view v) {
  int n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr != v.data() + v.size() || n < 0) return std::nullopt;
  return n;
}

}  // namespace h2mesh::grpc
