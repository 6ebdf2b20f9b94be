#!/usr/bin/env bash
# Installs the dependencies, builds h2mesh and the greeter, and runs `h2mesh demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DH2MESH_TESTS=OFF >/dev/null
ninja -C build-demo h2mesh greeter
exec build-demo/bin/h2mesh demo
