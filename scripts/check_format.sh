#!/usr/bin/env bash
# Fails when any tracked C/C++ source differs from .clang-format (run `clang-format -i` to fix).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.cpp' '*.h' '*.hpp' '*.c' | xargs clang-format --dry-run --Werror
