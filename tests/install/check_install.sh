#!/usr/bin/env bash
# Installs the build into a fresh prefix and uses it the way a user would:
#   1. cmake --install <build> --prefix <work>/prefix
#   2. examples/ configured and built as its own project with find_package(diffuse)
#   3. examples/generate_c.c compiled with `pkg-config --cflags --libs diffuse`
#   4. both example programs and the installed CLI run on the fixtures' tiny model
# Usage: check_install.sh <build_dir> <examples_dir> <tiny_model_dir> <work_dir> <cc> <cmake> <generator>
set -euo pipefail
build=$1 examples=$2 model=$3 work=$4 cc=$5 cmake=$6 generator=$7
prefix=$work/prefix

rm -rf "$work"
mkdir -p "$work"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log"

fail() { echo "FAIL: $*" >&2; exit 1; }
libdir=$(dirname "$(find "$prefix" -name 'libdiffuse.so' | head -n1)")
[ -n "$libdir" ] && [ -d "$libdir" ] || fail "no libdiffuse.so installed"
for f in include/diffuse/diffuse.h include/diffuse/diffuse.hpp include/diffuse/error.hpp \
         include/diffuse/utilities.hpp bin/diffuse; do
  [ -e "$prefix/$f" ] || fail "$f not installed"
done
[ -e "$libdir/cmake/diffuse/diffuseConfig.cmake" ] || fail "diffuseConfig.cmake not installed"
[ -e "$libdir/cmake/diffuse/diffuseConfigVersion.cmake" ] || fail "version file not installed"
[ -e "$libdir/pkgconfig/diffuse.pc" ] || fail "diffuse.pc not installed"
if [ -n "$(find "$prefix" -name '*.a')" ]; then fail "static archives installed"; fi
soname=$(objdump -p "$libdir/libdiffuse.so" | awk '/SONAME/ {print $2}')
[[ "$soname" =~ ^libdiffuse\.so\.[0-9]+$ ]] || fail "SONAME is '$soname', want libdiffuse.so.<major>"
[ -e "$libdir/$soname" ] || fail "$soname not installed"
echo "installed: $soname"

# 2. A separate CMake project against the installed package.
"$cmake" -S "$examples" -B "$work/examples" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure.log"
"$cmake" --build "$work/examples" >"$work/build.log"

# 3. pkg-config, plain C compiler, no CMake.
export PKG_CONFIG_PATH=$libdir/pkgconfig
flags=$(pkg-config --cflags --libs diffuse)
echo "pkg-config: $flags"
# shellcheck disable=SC2086
"$cc" -std=c99 -Wall -Wextra -Werror "$examples/generate_c.c" $flags -Wl,-rpath,"$libdir" \
  -o "$work/generate_c_pkgconfig"

# 4. Run them on the tiny model; no LD_LIBRARY_PATH: the programs find the library by their RPATH.
unset LD_LIBRARY_PATH
"$work/examples/example_generate" "$model" "a red fox" "$work/cpp.png" 2>"$work/cpp.log" ||
  { cat "$work/cpp.log" >&2; fail "C++ example failed"; }
"$work/generate_c_pkgconfig" "$model" "a red fox" "$work/c.png" 2>"$work/c.log" ||
  { cat "$work/c.log" >&2; fail "C example (pkg-config build) failed"; }
for png in "$work/cpp.png" "$work/c.png"; do
  [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$png is not a PNG"
done
# The installed CLI: its library by RPATH, its assets from <prefix>/share/diffuse.
"$prefix/bin/diffuse" info "$work/cpp.png" | grep -q "Seed: 42" || fail "installed diffuse info"
[ -e "$prefix/share/diffuse/tokenizer/vocab.json" ] || fail "assets not installed"
"$prefix/bin/diffuse" tokenize --json "a photo of a cat" | grep -q '"tokens":7' ||
  fail "installed diffuse tokenize"
echo "ok"
