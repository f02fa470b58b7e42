# Cross-compiling for 64-bit ARM Linux on a Debian 12 x86-64 host:
#
#   sudo dpkg --add-architecture arm64 && sudo apt-get update
#   sudo apt-get install g++-aarch64-linux-gnu qemu-user libdnnl2:arm64 libpng-dev:arm64 \
#       zlib1g-dev:arm64 libssl-dev:arm64 libgtest-dev:arm64 libhiredis-dev:arm64 \
#       libcurl4-openssl-dev:arm64 libcpp-httplib-dev:arm64
#   # libdnnl-dev:arm64 cannot sit beside the amd64 one (their dnnl_config.h differ): unpack it.
#   apt-get download libdnnl-dev:arm64 && dpkg -x libdnnl-dev_*_arm64.deb /opt/sysroot-arm64
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_BUILD_TYPE=Release -DDIFFUSE_BUILD_BENCH=OFF \
#       -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#       -DDNNL_INCLUDE_DIR=/opt/sysroot-arm64/usr/include \
#       -DDNNL_LIBRARY=/usr/lib/aarch64-linux-gnu/libdnnl.so.2
#   cmake --build build-arm64
#
# Test programs (and GoogleTest's discovery at build time) run through user-mode QEMU. QEMU 7.2
# (Debian 12) on a recent host kernel hangs in any condition-variable wait, so the tests, which
# use the thread pool, need a real aarch64 machine or a newer QEMU.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Libraries and pkg-config files of the arm64 packages; headers are shared with the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
# Test programs (and GoogleTest's test discovery) run through user-mode QEMU.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
