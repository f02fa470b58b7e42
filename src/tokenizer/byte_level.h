// GPT-2 / CLIP "byte-level" alphabet: every byte is represented by one printable character, so a
// BPE vocabulary over those characters covers any byte string without an unknown token. Bytes
// that are already printable (and not space) stand for themselves; the other 68 are shifted to
// U+0100 onwards in byte order.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace diffuse::byte_level {

/// The character that stands for byte `b`.
char32_t byte_to_char(uint8_t b);
/// The byte that character `c` stands for, or -1 when `c` is not in the alphabet.
int char_to_byte(char32_t c);
/// UTF-8 of byte_to_char(b): the vocabulary spelling of a single byte.
std::string byte_token(uint8_t b);

}  // namespace diffuse::byte_level
