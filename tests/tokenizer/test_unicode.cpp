// The Unicode pieces of the tokenizer: classes, lowercasing, NFC, UTF-8 with replacement, and
// the pre-tokenizer's splitting.
#include <gtest/gtest.h>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace diffuse {
namespace {

using unicode::CharClass;

TEST(tokenizer_unicode, char_classes) {
  EXPECT_EQ(unicode::char_class(U'a'), CharClass::Letter);
  EXPECT_EQ(unicode::char_class(U'7'), CharClass::Number);
  EXPECT_EQ(unicode::char_class(U'\t'), CharClass::Space);
  EXPECT_EQ(unicode::char_class(U'\''), CharClass::Other);
  EXPECT_EQ(unicode::char_class(0x00E9), CharClass::Letter);  // é
  EXPECT_EQ(unicode::char_class(0x65E5), CharClass::Letter);  // 日 (Lo)
  EXPECT_EQ(unicode::char_class(0x00B2), CharClass::Number);  // ² (No)
  EXPECT_EQ(unicode::char_class(0x2167), CharClass::Number);  // Ⅷ (Nl)
  EXPECT_EQ(unicode::char_class(0x0663), CharClass::Number);  // Arabic-Indic 3 (Nd)
  EXPECT_EQ(unicode::char_class(0x0301), CharClass::Other);   // combining acute (Mn)
  EXPECT_EQ(unicode::char_class(0x1F600), CharClass::Other);  // 😀 (So)
  EXPECT_EQ(unicode::char_class(0x00A0), CharClass::Space);
  EXPECT_EQ(unicode::char_class(0x3000), CharClass::Space);
  EXPECT_EQ(unicode::char_class(0x200B), CharClass::Other);  // zero width space: not White_Space
  EXPECT_EQ(unicode::char_class(0x10FFFF), CharClass::Other);
}

std::u32string lower(std::u32string_view s) {
  std::u32string out;
  for (char32_t c : s) unicode::append_lowercase(out, c);
  return out;
}

TEST(tokenizer_unicode, lowercase) {
  EXPECT_EQ(lower(U"ABC xyz 09"), U"abc xyz 09");
  EXPECT_EQ(lower(U"\u00C9\u00DE"), U"\u00E9\u00FE");              // Latin-1
  EXPECT_EQ(lower(U"\u0100\u0101\u0102"), U"\u0101\u0101\u0103");  // alternating block
  EXPECT_EQ(lower(U"\u0395\u039B\u03A3"), U"\u03B5\u03BB\u03C3");  // Greek, no final sigma
  EXPECT_EQ(lower(U"\u0416"), U"\u0436");                          // Cyrillic
  EXPECT_EQ(lower(U"\u0130"), U"i\u0307");                         // İ
  EXPECT_EQ(lower(U"\u1E9E"), U"\u00DF");                          // ẞ
  EXPECT_EQ(lower(U"\u2160"), U"\u2170");                          // Roman numeral
  EXPECT_EQ(lower(U"\U00010400"), U"\U00010428");                  // Deseret
  EXPECT_EQ(lower(U"\u65E5\u00DF"), U"\u65E5\u00DF");
}

TEST(tokenizer_unicode, nfc) {
  EXPECT_EQ(unicode::nfc(U"cafe\u0301"), U"caf\u00E9");
  EXPECT_EQ(unicode::nfc(U"caf\u00E9"), U"caf\u00E9");
  // Canonical reordering: dot below (220) sorts before acute (230); ẹ then composes, and the
  // acute stays separate because no precomposed ẹ́ exists.
  EXPECT_EQ(unicode::nfc(U"e\u0301\u0323"), U"\u1EB9\u0301");
  EXPECT_EQ(unicode::nfc(U"\u00E9\u0323"), U"\u1EB9\u0301");
  // Multi-level: ǖ = u + diaeresis + macron.
  EXPECT_EQ(unicode::nfc(U"u\u0308\u0304"), U"\u01D6");
  // Singletons and composition exclusions decompose and never recompose.
  EXPECT_EQ(unicode::nfc(U"\u212B"), U"\u00C5");  // Angstrom sign -> Å
  EXPECT_EQ(unicode::nfc(U"\u0958"), U"\u0915\u093C");
  // Hangul: jamo compose algorithmically; syllables survive.
  EXPECT_EQ(unicode::nfc(U"\u1100\u1161\u11A8"), U"\uAC01");
  EXPECT_EQ(unicode::nfc(U"\uAC01"), U"\uAC01");
  // Blocking: a mark of the same class in between prevents composition, a lower one does not.
  EXPECT_EQ(unicode::nfc(U"a\u20D7\u0301"), U"a\u20D7\u0301");
  EXPECT_EQ(unicode::nfc(U"a\u0316\u0301"), U"\u00E1\u0316");
  EXPECT_EQ(unicode::nfc(U"ae\u0301"), U"a\u00E9");
  EXPECT_EQ(unicode::nfc(U"\u0301a"), U"\u0301a");
}

TEST(tokenizer_unicode, utf8) {
  EXPECT_EQ(unicode::decode_utf8("a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80"),
            U"a\u00E9\u65E5\U0001F600");
  EXPECT_EQ(unicode::decode_utf8("\x80"), U"\uFFFD");
  EXPECT_EQ(unicode::decode_utf8("\xF0\x9F\x98"), U"\uFFFD");  // truncated: one U+FFFD
  EXPECT_EQ(unicode::decode_utf8("\xF0\x9F\x98"
                                 "a"),
            U"\uFFFDa");
  EXPECT_EQ(unicode::decode_utf8("\xF4\x90\x80\x80"), U"\uFFFD\uFFFD\uFFFD\uFFFD");  // > 10FFFF
  EXPECT_EQ(unicode::encode_utf8(U"a\u00E9\u65E5\U0001F600"),
            "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80");
}

std::vector<std::u32string> words(std::u32string_view text) {
  std::vector<WordSpan> spans;
  clip_pre_tokenize(text, spans);
  std::vector<std::u32string> out;
  for (const WordSpan& s : spans) out.emplace_back(text.substr(s.begin, s.end - s.begin));
  return out;
}

TEST(tokenizer_unicode, pre_tokenizer) {
  using V = std::vector<std::u32string>;
  EXPECT_EQ(words(U"it's a dog's"), (V{U"it", U"'s", U"a", U"dog", U"'s"}));
  EXPECT_EQ(words(U"they're we'll i'd"), (V{U"they", U"'re", U"we", U"'ll", U"i", U"'d"}));
  EXPECT_EQ(words(U"''s !'s"), (V{U"''", U"s", U"!'", U"s"}));
  EXPECT_EQ(words(U"123 4.5"), (V{U"1", U"2", U"3", U"4", U".", U"5"}));
  EXPECT_EQ(words(U"(a:1.2),"), (V{U"(", U"a", U":", U"1", U".", U"2", U"),"}));
  EXPECT_EQ(words(U"  \t\n "), V{});
  EXPECT_EQ(words(U"e\u0301"), (V{U"e", U"\u0301"}));
  EXPECT_EQ(words(U"x<|endoftext|>y"), (V{U"x", U"<|", U"endoftext", U"|>", U"y"}));
  EXPECT_EQ(words(U"!<|endoftext|>"), (V{U"!<|", U"endoftext", U"|>"}));
}

}  // namespace
}  // namespace diffuse
