#include "tokenizer/clip_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace diffuse {

namespace {

// CLIPTokenizer's defaults, used for whatever the config files leave out.
struct Config {
  std::string bos = "<|startoftext|>";
  std::string eos = "<|endoftext|>";
  std::string pad = "<|endoftext|>";
  std::string unk = "<|endoftext|>";
  int64_t max_length = 77;
  bool lowercase = true;
};

// transformers writes model_max_length = 1e30 ("no limit") when a config has none; the CLIP text
// encoder still has 77 positions, so anything that large keeps the default.
constexpr double kUnsetMaxLength = 1e6;

std::optional<nlohmann::json> read_optional_json(const std::string& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  const std::string text = read_text_file(path);
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.is_object()) throw FileError(path + ": expected a JSON object");
    return j;
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    throw FileError(path + ": invalid JSON: " + what);
  }
}

// A special token is written either as a string or as a serialized AddedToken {"content": ...};
// null means "not set".
void read_token(const nlohmann::json& j, const std::string& key, const std::string& path,
                std::string& out) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (it->is_string()) {
    out = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    out = (*it)["content"].get<std::string>();
  } else {
    throw FileError(path + ": '" + key + "' must be a string or an object with \"content\"");
  }
  if (out.empty()) throw FileError(path + ": '" + key + "' is empty");
}

void read_config(const nlohmann::json& j, const std::string& path, Config& c) {
  read_token(j, "bos_token", path, c.bos);
  read_token(j, "eos_token", path, c.eos);
  read_token(j, "pad_token", path, c.pad);
  read_token(j, "unk_token", path, c.unk);
  if (const auto it = j.find("model_max_length"); it != j.end() && !it->is_null()) {
    if (!it->is_number()) throw FileError(path + ": 'model_max_length' must be a number");
    const double v = it->get<double>();
    if (v < kUnsetMaxLength) {
      if (!it->is_number_integer() || v < 2)
        throw FileError(path + ": 'model_max_length' must be an integer >= 2");
      c.max_length = it->get<int64_t>();
    }
  }
  // transformers 5 lowercases unconditionally; every CLIP config says true, so honouring the
  // flag only matters for a hand-made config that asks for case-sensitive tokens.
  if (const auto it = j.find("do_lower_case"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) throw FileError(path + ": 'do_lower_case' must be true or false");
    c.lowercase = it->get<bool>();
  }
}

}  // namespace

ClipTokenizer ClipTokenizer::load(const std::string& dir) {
  return load(dir, dir);
}

ClipTokenizer ClipTokenizer::load(const std::string& vocabulary_dir,
                                  const std::string& config_dir) {
  const std::filesystem::path vocabulary(vocabulary_dir), root(config_dir);
  ClipTokenizer t;
  t.bpe_ =
      BpeModel::load((vocabulary / "vocab.json").string(), (vocabulary / "merges.txt").string());

  Config config;
  const std::string config_path = (root / "tokenizer_config.json").string();
  const std::string map_path = (root / "special_tokens_map.json").string();
  if (auto j = read_optional_json(config_path)) read_config(*j, config_path, config);
  if (auto j = read_optional_json(map_path)) {  // transformers lets this file override tokens
    read_token(*j, "bos_token", map_path, config.bos);
    read_token(*j, "eos_token", map_path, config.eos);
    read_token(*j, "pad_token", map_path, config.pad);
    read_token(*j, "unk_token", map_path, config.unk);
  }

  const std::string vocab_path = (vocabulary / "vocab.json").string();
  auto id_of = [&](const std::string& token, const char* role) {
    const auto id = t.bpe_.token_id(token);
    if (!id)
      throw FileError(vocab_path + ": " + role + " '" + token + "' is not in the vocabulary");
    return *id;
  };
  t.bos_id_ = id_of(config.bos, "bos_token");
  t.eos_id_ = id_of(config.eos, "eos_token");
  t.pad_id_ = id_of(config.pad, "pad_token");
  const int64_t unk_id = id_of(config.unk, "unk_token");
  t.max_length_ = config.max_length;
  t.lowercase_ = config.lowercase;

  // The reference registers these four as special added tokens: matched in the raw text before
  // normalisation, wherever they occur.
  const std::pair<const std::string*, int64_t> specials[] = {{&config.bos, t.bos_id_},
                                                             {&config.eos, t.eos_id_},
                                                             {&config.unk, unk_id},
                                                             {&config.pad, t.pad_id_}};
  for (const auto& [text, id] : specials) {
    std::u32string u = unicode::decode_utf8(*text);
    const bool seen = std::any_of(t.specials_.begin(), t.specials_.end(),
                                  [&](const SpecialToken& s) { return s.text == u; });
    if (!seen) t.specials_.push_back(SpecialToken{std::move(u), id});
  }
  std::stable_sort(
      t.specials_.begin(), t.specials_.end(),
      [](const SpecialToken& a, const SpecialToken& b) { return a.text.size() > b.text.size(); });
  return t;
}

namespace {
std::u32string normalize(std::u32string_view segment, bool lowercase) {
  std::u32string text = unicode::nfc(segment);
  if (!lowercase) return text;
  std::u32string lower;
  lower.reserve(text.size());
  for (char32_t c : text) unicode::append_lowercase(lower, c);
  return lower;
}
}  // namespace

bool ClipTokenizer::in_vocabulary(const std::string& text) const {
  return bpe_.token_id(text).has_value() ||
         bpe_.token_id(text + std::string(BpeModel::kEndOfWord)).has_value();
}

ClipTokenizer ClipTokenizer::with_added_token(const std::string& text,
                                              std::vector<int64_t> ids) const {
  const std::u32string normalized = normalize(unicode::decode_utf8(text), lowercase_);
  if (normalized.empty() || ids.empty())
    throw ConfigError("added token '" + text + "': empty token or no ids");
  if (in_vocabulary(unicode::encode_utf8(normalized)))
    throw ConfigError("added token '" + text +
                      "' is already a token of the vocabulary (give the embedding another name)");
  for (const AddedToken& a : added_)
    if (a.text == normalized) throw ConfigError("token '" + text + "' is added twice");
  ClipTokenizer t = *this;
  t.added_.push_back(AddedToken{normalized, std::move(ids)});
  std::stable_sort(t.added_.begin(), t.added_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.text.size() > b.text.size();
  });
  return t;
}

size_t ClipTokenizer::added_token_length_at(const std::vector<int64_t>& ids,
                                            size_t position) const {
  for (const AddedToken& a : added_) {
    if (position + a.ids.size() > ids.size()) continue;
    if (std::equal(a.ids.begin(), a.ids.end(), ids.begin() + static_cast<ptrdiff_t>(position)))
      return a.ids.size();
  }
  return 0;
}

void ClipTokenizer::encode_segment(std::u32string_view segment, std::vector<int64_t>& ids) const {
  if (segment.empty()) return;
  const std::u32string text = normalize(segment, lowercase_);
  // Added (textual-inversion) tokens are cut out of the normalised text, leftmost-longest.
  const std::u32string_view view(text);
  size_t start = 0, i = 0;
  while (!added_.empty() && i < view.size()) {
    const AddedToken* hit = nullptr;
    for (const AddedToken& a : added_)
      if (view.substr(i).starts_with(a.text)) {
        hit = &a;
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    encode_words(view.substr(start, i - start), ids);
    ids.insert(ids.end(), hit->ids.begin(), hit->ids.end());
    i += hit->text.size();
    start = i;
  }
  encode_words(view.substr(start), ids);
}

void ClipTokenizer::encode_words(std::u32string_view text, std::vector<int64_t>& ids) const {
  if (text.empty()) return;
  std::vector<WordSpan> words;
  clip_pre_tokenize(text, words);
  std::string bytes;
  for (const WordSpan& w : words) {
    bytes.clear();
    for (size_t i = w.begin; i < w.end; ++i) unicode::append_utf8(bytes, text[i]);
    bpe_.encode_word(bytes, ids);
  }
}

std::vector<int64_t> ClipTokenizer::encode(std::string_view text) const {
  const std::u32string u = unicode::decode_utf8(text);
  std::vector<int64_t> ids;
  ids.reserve(u.size() / 3 + 2);
  ids.push_back(bos_id_);
  // Leftmost-longest scan for special tokens; the text between them is encoded normally.
  const std::u32string_view view(u);
  size_t segment_start = 0, i = 0;
  while (i < view.size()) {
    const SpecialToken* hit = nullptr;
    for (const SpecialToken& s : specials_) {
      if (view.substr(i).starts_with(s.text)) {
        hit = &s;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    encode_segment(view.substr(segment_start, i - segment_start), ids);
    ids.push_back(hit->id);
    i += hit->text.size();
    segment_start = i;
  }
  encode_segment(view.substr(segment_start), ids);
  ids.push_back(eos_id_);
  return ids;
}

ClipTokenizer::Encoded ClipTokenizer::encode_padded(std::string_view text) const {
  Encoded e;
  e.input_ids = encode(text);
  e.tokens = e.input_ids.size();
  const auto max = static_cast<size_t>(max_length_);
  if (e.input_ids.size() > max) {
    // transformers truncates the content to max_length - 2 and then adds bos/eos around it.
    e.input_ids.resize(max);
    e.input_ids.back() = eos_id_;
  }
  e.input_ids.resize(max, pad_id_);
  return e;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || id >= bpe_.vocab_size())
      throw ConfigError("decode: token id " + std::to_string(id) + " is outside the vocabulary");
    if (id == bos_id_ || id == eos_id_) continue;
    std::string_view token = bpe_.token(id);
    const bool word_end = token.ends_with(BpeModel::kEndOfWord);
    if (word_end) token.remove_suffix(BpeModel::kEndOfWord.size());
    for (char32_t c : unicode::decode_utf8(token)) {
      const int b = byte_level::char_to_byte(c);
      if (b >= 0) bytes.push_back(static_cast<char>(b));
    }
    if (word_end) bytes.push_back(' ');
  }
  while (!bytes.empty() && bytes.back() == ' ') bytes.pop_back();
  // The ids may cut a multi-byte character; hand back valid UTF-8 regardless.
  return unicode::encode_utf8(unicode::decode_utf8(bytes));
}

}  // namespace diffuse
