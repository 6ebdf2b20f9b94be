#!/usr/bin/env bash
# Installs the dependencies, then builds and runs the whole test suite three times: a normal
# build, an AddressSanitizer + UndefinedBehaviorSanitizer build and a ThreadSanitizer build;
# then runs every libFuzzer target for a bounded time (FUZZ_SECONDS each, default 30). Prints
# the time each stage took.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
jobs=$(nproc)
stages=()

run_suite() {  # build dir, extra cmake flags...
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DH2MESH_TESTS=ON "$@" >/dev/null
  ninja -C "$dir"
  # Integration tests start real processes and check timing bounds: run them one at a time.
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" -LE integration
  ctest --test-dir "$dir" --output-on-failure -L integration
}

stage() {  # name, command...
  local name=$1 start=$SECONDS
  shift
  echo "== $name =="
  "$@"
  stages+=("$(printf '%-22s %5ds' "$name" $((SECONDS - start)))")
}

print_stages() {
  echo "== time per stage =="
  if ((${#stages[@]})); then printf '%s\n' "${stages[@]}"; fi
}
trap print_stages EXIT  # also when a stage fails: the stages before it and their times

stage "normal build" run_suite build
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage "ASan + UBSan build" run_suite build-asan -DH2MESH_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp"
stage "TSan build" run_suite build-tsan -DH2MESH_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
stage "fuzzers" bash fuzz/run.sh "${FUZZ_SECONDS:-30}"
