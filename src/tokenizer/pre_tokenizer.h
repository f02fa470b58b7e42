// Splits normalised text into words the way the CLIP pre-tokenizer does. The reference is a
// Sequence of two regex splits (HF tokenizers, Oniguruma semantics: leftmost match, alternatives
// tried in order, unmatched text dropped):
//   1. CLIP:  <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|
//             [^\s\p{L}\p{N}]+
//   2. ByteLevel(use_regex) on each piece, GPT-2's pattern; on whitespace-free pieces it reduces
//      to 's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+ and only ever splits the two
//      special spellings (e.g. "<|endoftext|>" -> "<|", "endoftext", "|>").
// Both are hand-written scanners over code points instead of a regex engine.
#pragma once

#include <string_view>
#include <vector>

namespace diffuse {

/// A word as [begin, end) code-point offsets into the text it was split from.
struct WordSpan {
  size_t begin, end;
};

/// Appends the words of `text` under the composed CLIP + byte-level splitting to `out`.
void clip_pre_tokenize(std::u32string_view text, std::vector<WordSpan>& out);

}  // namespace diffuse
