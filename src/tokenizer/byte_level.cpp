#include "tokenizer/byte_level.h"

#include "tokenizer/unicode.h"

namespace diffuse::byte_level {

namespace {

bool stands_for_itself(uint8_t b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

// 188 bytes stand for themselves and 68 are shifted, so the alphabet ends below U+0144.
constexpr char32_t kAlphabetEnd = 0x100 + 68;

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, kAlphabetEnd> to_byte{};
  Tables() {
    to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const auto u = static_cast<uint8_t>(b);
      to_char[b] = stands_for_itself(u) ? char32_t(b) : next++;
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t byte_to_char(uint8_t b) {
  return tables().to_char[b];
}

int char_to_byte(char32_t c) {
  return c < kAlphabetEnd ? tables().to_byte[c] : -1;
}

std::string byte_token(uint8_t b) {
  std::string s;
  unicode::append_utf8(s, byte_to_char(b));
  return s;
}

}  // namespace diffuse::byte_level
