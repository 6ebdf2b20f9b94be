#pragma once

#include <string>
#include <utility>
#include <variant>

namespace h2mesh {

// One flat error enum for the whole project. Proxy errors are mapped to gRPC statuses in
// exactly one place (grpc/status.h: status_for_error).
enum class ErrorCode {
  Ok = 0,
  InvalidArgument,
  Io,
  ConnectFailed,
  ConnectTimeout,
  NoHealthyEndpoint,
  NoRoute,
  UpstreamReset,
  UpstreamGoaway,
  UpstreamProtocol,
  DownstreamProtocol,
  DeadlineExceeded,
  Overloaded,
  Draining,
  PermissionDenied,  // the process lacks a privilege (e.g. CAP_NET_ADMIN for iptables)
  Internal,
};

const char* error_code_name(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::Internal;
  std::string message;
};

// expected-like result: g++ 12 ships std::expected only under -std=c++23.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

inline Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

}  // namespace h2mesh
