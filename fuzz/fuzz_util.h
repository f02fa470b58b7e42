// Shared by the libFuzzer targets: a per-process scratch file for readers that take a path, and
// the contract every reader keeps on bad input: a FileError, on one line, naming the file.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "diffuse/error.hpp"

namespace diffuse::fuzz {

/// A scratch path in /dev/shm (memory) when there is one, else $TMPDIR or /tmp.
inline const std::string& scratch_path(const char* suffix) {
  static const std::string path = [suffix] {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (tmp ? tmp : "/tmp");
    return dir + "/diffuse-fuzz-" + std::to_string(getpid()) + suffix;
  }();
  return path;
}

inline void write_scratch(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

/// Aborts (a finding) unless `e` is the one-line error naming `what` that readers promise.
inline void check_error(const FileError& e, const std::string& what) {
  const std::string msg = e.what();
  if (msg.find(what) == std::string::npos || msg.find('\n') != std::string::npos) {
    std::fprintf(stderr, "bad error message: %s\n", msg.c_str());
    std::abort();
  }
}

}  // namespace diffuse::fuzz
