#!/usr/bin/env bash
# Installs the dependencies, then builds and runs the whole test suite twice: a normal build,
# and an AddressSanitizer + UndefinedBehaviorSanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
jobs=$(nproc)

run_suite() {  # build dir, extra cmake flags...
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DH2MESH_TESTS=ON "$@" >/dev/null
  ninja -C "$dir"
  # Integration tests start real processes and check timing bounds: run them one at a time.
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" -LE integration
  ctest --test-dir "$dir" --output-on-failure -L integration
}

echo "== normal build =="
run_suite build
echo "== ASan + UBSan build =="
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan -DH2MESH_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
