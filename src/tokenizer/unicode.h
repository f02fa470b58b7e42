// The Unicode operations the CLIP tokenizer's normaliser and pre-tokenizer need: UTF-8 decoding
// with replacement, character classes (\s, \p{L}, \p{N}), per-character lowercasing and NFC.
// Backed by the generated tables in unicode_tables.cpp.
#pragma once

#include <string>
#include <string_view>

namespace diffuse::unicode {

constexpr char32_t kReplacementChar = 0xFFFD;

/// Decodes UTF-8. Malformed input never throws: each maximal ill-formed subsequence (a stray
/// continuation byte, a truncated sequence, an overlong form, a surrogate, a value above
/// U+10FFFF) becomes one U+FFFD, exactly as Python's bytes.decode("utf-8", "replace") does, so a
/// prompt that Python would have decoded that way tokenizes identically.
std::u32string decode_utf8(std::string_view bytes);

/// Appends the UTF-8 encoding of `c` (which must be a valid scalar value).
void append_utf8(std::string& out, char32_t c);
std::string encode_utf8(std::u32string_view text);

/// The classes the CLIP pre-tokenizer regex distinguishes. `Space` is Unicode White_Space (what
/// Oniguruma's \s matches); Letter is General_Category L*, Number is N*; everything else (marks,
/// punctuation, symbols, controls, unassigned) is Other.
enum class CharClass { Other, Space, Letter, Number };
CharClass char_class(char32_t c);

/// Appends the full lowercase mapping of `c` (one character, except U+0130 which lowercases to
/// "i" + U+0307), without context (a final sigma is not special), as Rust's char::to_lowercase.
void append_lowercase(std::u32string& out, char32_t c);

/// Canonical composition (Normalization Form C).
std::u32string nfc(std::u32string_view text);

}  // namespace diffuse::unicode
