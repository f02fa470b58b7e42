#!/usr/bin/env bash
# Fails when any tracked C/C++ source differs from .clang-format (run `clang-format -i` to fix).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check_format: clang-format not found (scripts/bootstrap.sh installs it)" >&2
  exit 1
fi
git ls-files '*.cpp' '*.h' '*.hpp' '*.c' | xargs clang-format --dry-run --Werror
