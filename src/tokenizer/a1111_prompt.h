// Prompts as AUTOMATIC1111's web UI reads them: emphasis ("(word)" x1.1, "((word))" x1.21,
// "(word:1.3)", "[word]" /1.1, "\(" for a literal bracket), "BREAK" to start a new chunk, and
// prompts of any length as 75-token chunks (each BOS + 75 + EOS), a chunk ending at the last comma
// when one is within 20 tokens of its end. As modules/prompt_parser.py (parse_prompt_attention)
// and modules/sd_hijack_clip.py (tokenize_line) compute them; the text encoding and the emphasis
// live in the pipeline's stages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/clip_tokenizer.h"

namespace diffuse::a1111 {

/// A run of prompt text and the weight A1111 gives it; {"BREAK", -1} marks a chunk break.
struct WeightedText {
  std::string text;
  double weight = 1.0;
};

struct ParsedPrompt {
  std::vector<WeightedText> parts;
  /// Brackets without their partner: A1111 reads them (an unclosed "(" weighs everything after
  /// it), but the user most likely mistyped.
  bool unbalanced = false;
};

/// parse_prompt_attention. ConfigError when a "(text:weight)" weight is not a number (A1111
/// fails on it too).
ParsedPrompt parse_prompt_attention(const std::string& prompt);

/// The tokens of chunk_length + 2 (77) and their emphasis multipliers.
struct PromptChunk {
  std::vector<int64_t> tokens;
  std::vector<float> multipliers;
};

/// tokenize_line: the parsed prompt's tokens in chunks of 75 between BOS and EOS, padded with
/// EOS, a BREAK closing a chunk early, with A1111's comma backtracking (20 tokens); a
/// multi-vector textual-inversion token (the tokenizer's added tokens) is kept whole, starting the
/// next chunk when it does not fit. Always at least one chunk.
std::vector<PromptChunk> tokenize_chunks(const ClipTokenizer& tokenizer,
                                         const ParsedPrompt& parsed);

}  // namespace diffuse::a1111
