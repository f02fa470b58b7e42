#include "tokenizer/pre_tokenizer.h"

#include "tokenizer/unicode.h"

namespace diffuse {

namespace {

using unicode::char_class;
using unicode::CharClass;

enum class Rules { Clip, Gpt2 };

// Length of the contraction ('s 't 're 've 'm 'll 'd, case-sensitive) at text[i], or 0.
size_t contraction_length(std::u32string_view text, size_t i) {
  if (text[i] != U'\'' || i + 1 >= text.size()) return 0;
  const char32_t a = text[i + 1];
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
  if (i + 2 >= text.size()) return 0;
  const char32_t b = text[i + 2];
  if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
  return 0;
}

// Runs the leftmost-first alternation of `rules` over text, appending [begin, end) matches
// (offset by `base`) and skipping what no alternative matches (whitespace).
void split(std::u32string_view text, size_t base, Rules rules, std::vector<WordSpan>& out) {
  static constexpr std::u32string_view kSpecial[] = {U"<|startoftext|>", U"<|endoftext|>"};
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    size_t len = 0;
    if (rules == Rules::Clip) {
      for (std::u32string_view s : kSpecial)
        if (text.substr(i).starts_with(s)) {
          len = s.size();
          break;
        }
    }
    if (len == 0) len = contraction_length(text, i);
    if (len == 0) {
      const CharClass cls = char_class(text[i]);
      if (cls == CharClass::Space) {
        ++i;
        continue;
      }
      // Letters and "other" characters match as runs; numbers are single under CLIP's [\p{N}]
      // and runs under GPT-2's \p{N}+.
      len = 1;
      if (cls != CharClass::Number || rules == Rules::Gpt2)
        while (i + len < n && char_class(text[i + len]) == cls) ++len;
    }
    out.push_back(WordSpan{base + i, base + i + len});
    i += len;
  }
}

}  // namespace

void clip_pre_tokenize(std::u32string_view text, std::vector<WordSpan>& out) {
  std::vector<WordSpan> pieces;
  split(text, 0, Rules::Clip, pieces);
  for (const WordSpan& p : pieces)
    split(text.substr(p.begin, p.end - p.begin), p.begin, Rules::Gpt2, out);
}

}  // namespace diffuse
