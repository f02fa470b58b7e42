// SHA-256 of a file (OpenSSL's libcrypto), as lowercase hex: the checksums of diffuse packages.
#pragma once

#include <string>

namespace diffuse {

/// Throws FileError naming `path` when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace diffuse
