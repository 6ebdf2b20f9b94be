// gRPC header values the proxy handles on every call: grpc-timeout parsed from the request and
// formatted again (the remaining deadline) for the upstream request, grpc-status parsed from
// the backend's trailers, and grpc-message encoded for the answers the proxy makes itself.

#include <benchmark/benchmark.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/time.h"
#include "grpc/status.h"

namespace h2mesh::grpc {
namespace {

void BM_ParseTimeout(benchmark::State& state, std::string_view value) {
  if (!parse_timeout(value)) {
    state.SkipWithError("not a valid grpc-timeout");
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(value);  // opaque input: the parse is not hoisted out of the loop
    std::optional<Duration> d = parse_timeout(value);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_ParseTimeout, millis_grpc_cpp, std::string_view("9998m"));
BENCHMARK_CAPTURE(BM_ParseTimeout, micros_8_digits, std::string_view("99999999u"));
BENCHMARK_CAPTURE(BM_ParseTimeout, seconds, std::string_view("5S"));

void BM_FormatTimeout(benchmark::State& state, Duration d) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(d);
    std::string s = format_timeout(d);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetItemsProcessed(state.iterations());
}
// A remaining deadline as the proxy forwards it: not a round number, so the finest unit that
// fits 8 digits wins (u here).
BENCHMARK_CAPTURE(BM_FormatTimeout, remaining_9_99s, Duration(9'987'654'321));
BENCHMARK_CAPTURE(BM_FormatTimeout, one_hour, Duration(std::chrono::hours(1)));

void BM_ParseStatus(benchmark::State& state, std::string_view value) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(value);
    std::optional<int> status = parse_status(value);
    benchmark::DoNotOptimize(status);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_ParseStatus, ok, std::string_view("0"));
BENCHMARK_CAPTURE(BM_ParseStatus, unavailable, std::string_view("14"));
BENCHMARK_CAPTURE(BM_ParseStatus, malformed, std::string_view("OK"));

void BM_EncodeMessage(benchmark::State& state, std::string_view message) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(message);
    std::string encoded = encode_message(message);
    benchmark::DoNotOptimize(encoded.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_EncodeMessage, proxy_unavailable,
                  std::string_view("endpoint 10.0.0.7:50051 is unavailable (last connect attempt: "
                                   "connection refused)"));
BENCHMARK_CAPTURE(BM_EncodeMessage, with_escapes,
                  std::string_view("100% of \"greeter\" endpoints ejected\n\xc3\xa9t\xc3\xa9"));

}  // namespace
}  // namespace h2mesh::grpc
