#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ (clang, -fsanitize=fuzzer,address,undefined) into
# build-fuzz/ and runs each for FUZZ_SECONDS (default 20) over its seed corpus fuzz/corpus/<t>/.
# New inputs go to build-fuzz/corpus/<t>/ (the committed seeds stay as they are); a crash leaves
# its input as build-fuzz/crash-* and fails the script. Only the library sources each target
# needs are compiled, once each, at -O1.
#   scripts/run_fuzzers.sh [target...]     targets: safetensors png checkpoint manifest (default: all)
#   FUZZ_SECONDS=600 scripts/run_fuzzers.sh checkpoint   # a longer run of one target
set -euo pipefail
cd "$(dirname "$0")/.."

CXX=${FUZZ_CXX:-clang++-14}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}
OUT=build-fuzz
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
FLAGS="-std=c++20 -O1 -gline-tables-only $SAN -Iinclude -Isrc -Itests -I. -DNDEBUG"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors png checkpoint manifest)

CORE="src/core/allocator.cpp src/core/device.cpp src/core/device_memory.cpp src/core/dtype.cpp src/core/mapped_file.cpp
      src/core/shape.cpp src/core/tensor.cpp"
sources_of() {
  case "$1" in
    safetensors) echo "$CORE src/io/safetensors.cpp src/io/safetensors_writer.cpp src/io/atomic_file.cpp" ;;
    png) echo "src/io/png_image.cpp src/io/atomic_file.cpp" ;;
    checkpoint) echo "$CORE src/io/pickle/pickle_reader.cpp src/io/pickle/zip_archive.cpp
                      src/io/pickle/torch_checkpoint.cpp" ;;
    manifest) echo "$CORE src/core/attention_kernel.cpp src/io/json_config.cpp src/io/package_manifest.cpp" ;;
    *) echo "run_fuzzers: unknown target '$1'" >&2; exit 2 ;;
  esac
}
libs_of() {
  case "$1" in
    png) echo "-lpng" ;;
    checkpoint) echo "-lz" ;;
    *) echo "" ;;
  esac
}
obj_of() { echo "$OUT/obj/$(echo "${1%.cpp}" | tr / _).o"; }

if ! command -v "$CXX" >/dev/null; then
  echo "run_fuzzers: $CXX not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi
mkdir -p "$OUT/obj"
start=$(date +%s)
# Compile every needed source once (the fuzz targets with -fsanitize=fuzzer, the library without
# its main), two at a time.
all=()
for t in "${targets[@]}"; do all+=($(sources_of "$t") "fuzz/fuzz_$t.cpp"); done
printf '%s\n' "${all[@]}" | sort -u | xargs -P "$(nproc)" -I{} bash -c '
  src={}; obj='"$OUT"'/obj/$(echo "${src%.cpp}" | tr / _).o
  extra=-fsanitize=fuzzer-no-link
  exec '"$CXX"' '"$FLAGS"' $extra -c "$src" -o "$obj"'
for t in "${targets[@]}"; do
  objs=()
  for s in $(sources_of "$t") "fuzz/fuzz_$t.cpp"; do objs+=("$(obj_of "$s")"); done
  $CXX $SAN -fsanitize=fuzzer "${objs[@]}" $(libs_of "$t") -o "$OUT/fuzz_$t"
done
echo "run_fuzzers: built ${targets[*]} in $(($(date +%s) - start)) s"

status=0
for t in "${targets[@]}"; do
  mkdir -p "$OUT/corpus/$t"
  # -malloc_limit_mb: one allocation over 512 MB from a few-KB input is a finding, not a slow run.
  if ! (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "./fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=512 -max_len=16384 -print_final_stats=1 \
        "corpus/$t" "../fuzz/corpus/$t" 2>"fuzz_$t.log"); then
    status=1
    echo "run_fuzzers: fuzz_$t FAILED (input saved under $OUT/crash-*; log $OUT/fuzz_$t.log):" >&2
    tail -40 "$OUT/fuzz_$t.log" >&2
  fi
  echo "run_fuzzers: fuzz_$t $(grep -E 'stat::number_of_executed_units' "$OUT/fuzz_$t.log" |
    awk '{print $2}') executions in ${SECONDS_PER_TARGET} s"
done
echo "run_fuzzers: done in $(($(date +%s) - start)) s"
exit $status
