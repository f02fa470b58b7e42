// Byte-level BPE model with an end-of-word suffix, as HF `tokenizers`' BPE model with
// end_of_word_suffix="</w>" and no continuing-subword prefix (the CLIP configuration).
//
// A word is a byte string (one pre-token); it starts as one symbol per byte, the last one spelled
// with the suffix, and adjacent symbols merge lowest merge rank first (leftmost on ties) until no
// listed merge applies. Everything runs on token ids: a merge is a hash-map entry
// (left id, right id) -> (rank, merged id).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace diffuse {

class BpeModel {
 public:
  /// Reads vocab.json ({token: id}) and merges.txt (optional "#version" first line, then one
  /// "left right" pair per line in rank order). Throws FileError naming the file (and line) when
  /// either is missing or malformed, or when a merge or a byte token is not in the vocabulary.
  static BpeModel load(const std::string& vocab_path, const std::string& merges_path);

  /// Appends the ids of `word`'s BPE tokens to `out`. `word` must be non-empty.
  void encode_word(std::string_view word, std::vector<int64_t>& out) const;

  std::optional<int64_t> token_id(std::string_view token) const;
  /// The vocabulary spelling of `id` (empty when no token has that id).
  const std::string& token(int64_t id) const;
  /// One past the largest id in the vocabulary.
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  size_t merge_count() const { return merges_.size(); }

  static constexpr std::string_view kEndOfWord = "</w>";

 private:
  struct Merge {
    int32_t rank;
    int32_t id;  // id of the merged token
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }
  const Merge* find_merge(int32_t left, int32_t right) const;

  // Transparent hashing so merges.txt lines can be looked up as string_views without copies.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_id_{};      // a byte inside a word
  std::array<int32_t, 256> byte_eow_id_{};  // a byte ending a word (spelled with "</w>")
};

}  // namespace diffuse
