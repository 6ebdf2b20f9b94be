// The client's side of the proxy: HTTP/2 frames from the fuzzer (after the connection preface)
// reach a DownstreamConnection; calls are routed to an echo backend, a refused endpoint, or no
// route at all. See proxy_harness.h for what is checked.

#include <cstddef>
#include <cstdint>

#include "proxy_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  h2mesh::fuzz::run_downstream_input(data, size);
  return 0;
}
