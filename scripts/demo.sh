#!/usr/bin/env bash
# Installs the dependencies, builds h2mesh and the greeter, and runs `h2mesh demo` with the
# arguments given (`bash scripts/demo.sh --mesh`: the mesh demo in network namespaces, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DH2MESH_TESTS=OFF >/dev/null
ninja -C build-demo h2mesh greeter
exec build-demo/bin/h2mesh demo "$@"
