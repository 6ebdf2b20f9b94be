#pragma once

// Drives one worker's data path — DownstreamConnection, router, ClusterManager, ConnPool,
// UpstreamConnection — on a private event loop, for one fuzz input:
//
//   client  ── socketpair ──>  proxy  ── TCP 127.0.0.1 ──>  backend
//
// One side speaks bytes from the fuzzer, delivered one frame at a time; the other is a correct
// HTTP/2 peer (an http2::Session). After each frame the loop runs until nothing moves for a few
// iterations. Every byte the proxy writes on either connection goes through a FrameChecker, and a
// correct peer that rejects what the proxy sent (GOAWAY or RST_STREAM with an error) is a
// failure too.

#include <cstddef>
#include <cstdint>

namespace h2mesh::fuzz {

// The client's side is the fuzzer's (frames after the connection preface, which the harness
// sends); the backend echoes each call's body and ends it with grpc-status 0.
void run_downstream_input(const uint8_t* data, size_t size);

// The client is a correct gRPC client making two calls; the backend's side is the fuzzer's
// (everything it sends, its SETTINGS included), on the first connection the proxy opens.
void run_upstream_input(const uint8_t* data, size_t size);

}  // namespace h2mesh::fuzz
