#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, build-fuzz/) and runs each for a bounded
# time on a copy of its seed corpus. Exits non-zero if any target crashed, leaked, timed out or
# broke a check; the input that did it is in build-fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [seconds per target, default 30] [target ...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(fuzz_downstream fuzz_upstream fuzz_config fuzz_grpc_timeout fuzz_k8s_slices
           fuzz_service_map fuzz_kubeconfig fuzz_dns_answer fuzz_inject)
fi

cmake -S . -B build-fuzz -G Ninja -DH2MESH_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build-fuzz "${targets[@]}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
printf '\n%-20s %12s %10s %8s %s\n' target executions "exec/s" corpus result
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t            # seeds plus what this run finds; the repo's stay as they are
  artifacts=build-fuzz/artifacts/$t/
  log=build-fuzz/$t.log
  rm -rf "$work" "$artifacts"
  mkdir -p "$work" "$artifacts"
  # -timeout: one input taking longer is a hang (a failure). -rss_limit_mb: a leak or runaway
  # buffer is a failure long before the machine swaps.
  if build-fuzz/fuzz/$t -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts" "$work" "fuzz/corpus/$t" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log, input in $artifacts)"
    failed+=("$t")
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(( ${runs:-0} / seconds ))
  printf '%-20s %12s %10s %8s %s\n' "$t" "${runs:-?}" "$rate" "$(ls "$work" | wc -l)" "$result"
done
if ((${#failed[@]})); then
  echo "fuzz: failures in ${failed[*]}"
  for t in "${failed[@]}"; do grep -m1 -A30 -E "ERROR|runtime error|frame checker|proxy harness" build-fuzz/$t.log || true; done
  exit 1
fi
