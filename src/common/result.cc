#include "common/result.h"

namespace h2mesh {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::Ok: return "ok";
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::Io: return "i/o error";
    case ErrorCode::ConnectFailed: return "connect failed";
    case ErrorCode::ConnectTimeout: return "connect timeout";
    case ErrorCode::NoHealthyEndpoint: return "no healthy endpoint";
    case ErrorCode::NoRoute: return "no route";
    case ErrorCode::UpstreamReset: return "upstream reset";
    case ErrorCode::UpstreamGoaway: return "upstream goaway";
    case ErrorCode::UpstreamProtocol: return "upstream protocol error";
    case ErrorCode::DownstreamProtocol: return "downstream protocol error";
    case ErrorCode::DeadlineExceeded: return "deadline exceeded";
    case ErrorCode::Overloaded: return "overloaded";
    case ErrorCode::Draining: return "draining";
    case ErrorCode::PermissionDenied: return "permission denied";
    case ErrorCode::Internal: return "internal error";
  }
  return "unknown";
}

}  // namespace h2mesh
