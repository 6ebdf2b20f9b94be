#!/usr/bin/env bash
# Installs what h2mesh needs on Debian 12 (run as root). With --tests, also what the test suite
# needs: GoogleTest, Google Benchmark (bench/micro), Python's grpcio, Node.js and the Node gRPC
# client's npm packages, and clang 14 with libFuzzer and its sanitizer runtimes (fuzz/). With --bench, also what bench/run needs: HAProxy, nginx, nghttpx,
# h2load, Python's grpcio; and for bench/profile, valgrind and strace.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build pkg-config protobuf-compiler protobuf-compiler-grpc
          libprotobuf-dev libgrpc++-dev libnghttp2-dev libyaml-cpp-dev libc-ares-dev libssl-dev
          nlohmann-json3-dev iptables iproute2 util-linux)
if [[ "${1:-}" == "--tests" ]]; then
  packages+=(googletest libgtest-dev libgmock-dev libbenchmark-dev python3 python3-grpcio python3-protobuf python3-yaml python3-jsonpatch openssl libcap2-bin)
  packages+=(clang libfuzzer-14-dev libclang-rt-14-dev)
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
  # tests/deploy/pod_schema.py: the Kubernetes API's generated models, an independent schema;
  # tests/fakes/test_pki.py: certificates for the TLS tests.
  packages+=(python3-kubernetes python3-cryptography)
  # tests/integration/dashboard_test.cc: the admin page in headless Chromium.
  packages+=(chromium)
  # tests/integration/metrics_check.py: an independent parser of /metrics.
  packages+=(python3-prometheus-client)
fi
if [[ "${1:-}" == "--bench" ]]; then
  # The peers and the load generator of bench/run. In Debian 12 the nginx binary (with
  # ngx_http_grpc_module built in) is the `nginx` package; nginx-light/-core only add modules.
  packages+=(haproxy nginx nghttp2-proxy nghttp2-client python3 python3-grpcio python3-protobuf)
  # bench/run --tls, bench/profile --tls: certificates from tests/fakes/test_pki.py.
  packages+=(python3-cryptography)
  # bench/profile: instructions and allocations per call (callgrind), system calls (strace).
  packages+=(valgrind strace)
  # bench/mesh_profile: the outbound path's per-call cost in network namespaces (iptables, ip,
  # setpriv are in the base list).
  packages+=(curl)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ "${1:-}" == "--tests" ]]; then
  npm ci --prefix tests/interop/node --no-audit --no-fund --loglevel=error
  # opentelemetry-proto definitions for the tracing test receiver (tests/fakes/otlp_receiver.py)
  npm ci --prefix tests/fakes/otlp --no-audit --no-fund --ignore-scripts --loglevel=error
fi
