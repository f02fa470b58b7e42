// The CLIP tokenizer used by Stable Diffusion 1.x/2.x/XL text encoders: produces exactly the ids
// of transformers' CLIPTokenizer (v5, backed by HF `tokenizers`). The pipeline, in order:
//   1. added special tokens (bos, eos, unk, pad) are cut out of the raw text wherever they occur,
//      case-sensitively, longest first (so SD 2.x's pad token "!" becomes its own id everywhere);
//   2. each remaining segment is NFC-normalised and lowercased (whitespace runs are only
//      separators, so the reference's \s+ -> " " replacement changes nothing that survives);
//   3. it is split into words (see pre_tokenizer.h); HTML entities are NOT unescaped ("&amp;"
//      stays three words) and there is no ftfy-style repair, as in the reference;
//   4. each word's UTF-8 bytes go through byte-level BPE with a "</w>" end-of-word suffix;
//   5. bos + ids + eos.
// Malformed UTF-8 input does not throw: each ill-formed subsequence is read as U+FFFD (see
// unicode::decode_utf8), which then tokenizes like any other symbol.
// Thread-safe: a loaded tokenizer is immutable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"

namespace diffuse {

class ClipTokenizer {
 public:
  /// Loads vocab.json, merges.txt and tokenizer_config.json / special_tokens_map.json (pad token,
  /// bos/eos, model_max_length, do_lower_case) from a diffusers `tokenizer/` folder. The two
  /// config files are optional (CLIP's defaults apply; special_tokens_map.json wins where both
  /// set a token). Missing or malformed files: throws FileError naming the file (one line).
  static ClipTokenizer load(const std::string& dir);
  /// The vocabulary (vocab.json, merges.txt) of one folder with the configuration of another: a
  /// bundled config folder's tokenizer/ (its pad token, e.g. SD 2.x's and SDXL's "!") with the
  /// shared CLIP vocabulary.
  static ClipTokenizer load(const std::string& vocabulary_dir, const std::string& config_dir);

  /// bos + BPE ids + eos, no truncation, no padding (transformers' untruncated ids).
  std::vector<int64_t> encode(std::string_view text) const;

  /// Truncated to max_length (keeping eos last) and padded with the pad token, as
  /// tokenizer(text, padding="max_length", truncation=True). `tokens` = the untruncated count.
  struct Encoded {
    std::vector<int64_t> input_ids;
    size_t tokens;
  };
  Encoded encode_padded(std::string_view text) const;

  int64_t max_length() const { return max_length_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t vocab_size() const { return bpe_.vocab_size(); }

  /// A copy that also knows `text` (a textual-inversion token) and encodes it as `ids` (a
  /// multi-vector embedding's consecutive ids, as diffusers' maybe_convert_prompt expands it).
  /// As transformers' normalized added tokens, it is matched in the normalised (lowercased) text,
  /// leftmost-longest, with the text around it encoded as usual. ConfigError when `text` is empty
  /// or already a token of the vocabulary or added before.
  ClipTokenizer with_added_token(const std::string& text, std::vector<int64_t> ids) const;
  /// How many of `ids` from `position` on are the ids of one added token (0: none starts there):
  /// A1111 keeps a multi-vector embedding whole in one 75-token chunk.
  size_t added_token_length_at(const std::vector<int64_t>& ids, size_t position) const;
  /// Whether `text` is a token of the BPE vocabulary (with or without the end-of-word mark).
  bool in_vocabulary(const std::string& text) const;

  /// Text of `ids` for debugging: bos/eos are dropped, "</w>" becomes a space, byte-level
  /// characters become bytes (an incomplete UTF-8 sequence decodes to U+FFFD). Lowercasing and
  /// dropped whitespace are of course not undone. Throws ConfigError on an id outside the vocab.
  std::string decode(const std::vector<int64_t>& ids) const;

 private:
  struct SpecialToken {
    std::u32string text;
    int64_t id;
  };
  struct AddedToken {
    std::u32string text;  // normalised
    std::vector<int64_t> ids;
  };
  void encode_segment(std::u32string_view segment, std::vector<int64_t>& ids) const;
  /// Pre-tokenisation and BPE of normalised text.
  void encode_words(std::u32string_view text, std::vector<int64_t>& ids) const;

  BpeModel bpe_;
  std::vector<SpecialToken> specials_;  // longest first
  std::vector<AddedToken> added_;       // longest first
  int64_t max_length_ = 77;
  int64_t bos_id_ = 0, eos_id_ = 0, pad_id_ = 0;
  bool lowercase_ = true;
};

}  // namespace diffuse
