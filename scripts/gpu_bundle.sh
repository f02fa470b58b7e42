#!/usr/bin/env bash
# Prepares, on a development machine (CUDA toolkit, no GPU), what scripts/gpu_check.sh needs on
# a GPU machine that has CUDA but none of diffuse's Debian libraries: the Release binaries built
# with the CUDA backend, the shared libraries they load (glibc's excepted), the tiny SD 1.x
# fixtures and the SD 1.5 configs, packed into .gpu/bundle.tar.xz (ignored by git). Then, with
# the `device` tool: run `bash scripts/gpu_check.sh` with carry [".gpu"].
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release
grep -q '^DIFFUSE_CUDA:BOOL=ON' build/CMakeCache.txt ||
  { echo "gpu_bundle: build/ has no CUDA backend (nvcc not found?)" >&2; exit 1; }
fixtures=$(sed -n 's/^DIFFUSE_FIXTURES_DIR:PATH=//p' build/CMakeCache.txt)
configs=$(sed -n 's/^DIFFUSE_CONFIGS_DIR:PATH=//p' build/CMakeCache.txt)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/fixtures/models" "$stage/configs" .gpu
cp build/bin/diffuse build/tests/test_backend build/tests/test_pipeline "$stage/bin/"
for b in "$stage"/bin/*; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u |
  grep -v -E '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
cp -r "$fixtures/golden" "$fixtures/README.md" "$stage/fixtures/"
cp -r "$fixtures/models/tiny-sd1" "$stage/fixtures/models/"
cp -r "$configs/sd15" "$stage/configs/"
# The test programs read the fixtures from the path they were built with: gpu_check.sh puts
# them there.
realpath -m "$fixtures" >"$stage/fixtures_path"
git rev-parse --short HEAD >"$stage/commit"
tar -C "$stage" -cJf .gpu/bundle.tar.xz .
ls -la .gpu/bundle.tar.xz
