#pragma once

// The table of what a call reports when it ends (proxy/call_event.h fills it). Kept below the
// proxy so that the configuration can name its fields (access_log.fields) without depending on
// the data path.

#include <cstdint>
#include <string_view>

#include "common/time.h"

namespace h2mesh::proxy {

// How a field is written (access log) or exported (span attribute).
enum class FieldKind { Text, Integer, Duration };

// X(type, member, name, kind, span_attribute): `name` is the access log's key and the name
// `access_log.fields` selects; `span_attribute` is the OpenTelemetry attribute a span carries
// (nullptr: not an attribute). Text fields point into the call's headers and are valid only
// during the report.
#define H2MESH_CALL_FIELDS(X)                                                                  \
  X(std::string_view, listener, "listener", Text, "h2mesh.listener")                           \
  X(std::string_view, authority, "authority", Text, "server.address")                          \
  X(std::string_view, service, "service", Text, "rpc.service")                                 \
  X(std::string_view, method, "method", Text, "rpc.method")                                    \
  X(int64_t, grpc_status, "grpc_status", Integer, "rpc.grpc.status_code")                      \
  X(std::string_view, cluster, "cluster", Text, "h2mesh.cluster")                              \
  X(std::string_view, upstream, "upstream", Text, "network.peer.address")                      \
  X(int64_t, attempts, "attempts", Integer, "h2mesh.attempts")                                 \
  X(Duration, duration, "duration", Duration, nullptr)                                         \
  X(Duration, upstream_duration, "upstream_duration", Duration, nullptr)                       \
  X(int64_t, request_bytes, "request_bytes", Integer, "rpc.request.size")                      \
  X(int64_t, response_bytes, "response_bytes", Integer, "rpc.response.size")

}  // namespace h2mesh::proxy
