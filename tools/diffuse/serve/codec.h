// Byte encodings the server needs, from OpenSSL's libcrypto: base64 (images in JSON) and SHA-256
// (A1111's model hashes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace diffuse::serve {

std::string base64_encode(const std::vector<uint8_t>& bytes);
/// Decodes standard base64; a "data:<type>;base64," prefix and whitespace are accepted. Throws
/// HttpError 422 naming `field` when the text is not base64.
std::vector<uint8_t> base64_decode(std::string_view text, const std::string& field);

/// Lower-case hex SHA-256 of bytes.
std::string sha256_hex(std::string_view bytes);

}  // namespace diffuse::serve
