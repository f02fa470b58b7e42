#include "serve/codec.h"

#include <openssl/evp.h>

#include <cstring>

#include "diffuse/error.hpp"
#include "serve/http_error.h"

namespace diffuse::serve {

std::string base64_encode(const std::vector<uint8_t>& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

namespace {

std::string_view strip_data_url(std::string_view text) {
  if (text.substr(0, 5) == "data:") {
    const size_t comma = text.find(',');
    if (comma != std::string_view::npos) return text.substr(comma + 1);
  }
  return text;
}

std::string to_hex(const unsigned char* digest, unsigned int size) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::vector<uint8_t> base64_decode(std::string_view text, const std::string& field) {
  std::string clean;
  clean.reserve(text.size());
  size_t padding = 0;
  for (char c : strip_data_url(text)) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
    } else if (!is_base64_char(c) || padding > 0) {
      throw invalid_parameter(field + ": not valid base64");
    }
    clean.push_back(c);
  }
  // Accept unpadded input (as Python's urlsafe clients sometimes send) by padding it here.
  while (clean.size() % 4 != 0) {
    clean.push_back('=');
    ++padding;
  }
  if (padding > 2 || clean.empty()) throw invalid_parameter(field + ": not valid base64");
  std::vector<uint8_t> out(clean.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (n < 0) throw invalid_parameter(field + ": not valid base64");
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  return to_hex(digest, size);
}

}  // namespace diffuse::serve
