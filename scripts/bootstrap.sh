#!/usr/bin/env bash
# Installs the Debian packages diffuse needs and builds it (Release, into ./build).
# Usage: bash scripts/bootstrap.sh [--asan]   (--asan: also build ./build-asan with ASan+UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake ninja-build pkg-config libdnnl-dev nlohmann-json3-dev
          libcli11-dev libpng-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev
          libcpp-httplib-dev libssl-dev clang-format libhiredis-dev redis-server
          libcurl4-openssl-dev clang-14 libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake --preset release >/dev/null
cmake --build --preset release
if [ "${1:-}" = "--asan" ]; then
  cmake --preset asan >/dev/null
  cmake --build --preset asan
fi
