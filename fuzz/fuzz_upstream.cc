// The backend's side of the proxy: a correct gRPC client makes two calls; the fuzzer's bytes
// are the backend's whole answer (SETTINGS, HEADERS, DATA, trailers, resets, GOAWAY...). See
// proxy_harness.h for what is checked.

#include <cstddef>
#include <cstdint>

#include "proxy_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  h2mesh::fuzz::run_upstream_input(data, size);
  return 0;
}
