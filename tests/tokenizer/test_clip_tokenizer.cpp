// CLIP tokenizer against transformers' CLIPTokenizer (golden/tokenizer-cases.json), plus the
// behaviour the golden file does not pin down: errors, malformed input, special tokens in text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "tokenizer/clip_tokenizer.h"

namespace diffuse {
namespace {

namespace fs = std::filesystem;

std::string tokenizer_dir(const std::string& model) {
  return test::fixture("models/" + model + "/tokenizer");
}

const ClipTokenizer& tokenizer(const std::string& model) {
  static const ClipTokenizer sd1 = ClipTokenizer::load(tokenizer_dir("tiny-sd1"));
  static const ClipTokenizer sd2 = ClipTokenizer::load(tokenizer_dir("tiny-sd2"));
  return model == "tiny-sd1" ? sd1 : sd2;
}

const nlohmann::json& golden_cases() {
  static const nlohmann::json j =
      nlohmann::json::parse(read_text_file(test::fixture("golden/tokenizer-cases.json")));
  return j;
}

void check_golden(const std::string& model) {
  const ClipTokenizer& tok = tokenizer(model);
  const auto& cases = golden_cases().at("tokenizers").at(model);
  ASSERT_GE(cases.size(), 16u);
  size_t passed = 0;
  for (const auto& c : cases) {
    const auto prompt = c.at("prompt").get<std::string>();
    SCOPED_TRACE(model + " prompt: " + prompt);
    const auto want_padded = c.at("input_ids").get<std::vector<int64_t>>();
    const auto want_full = c.at("untruncated_ids").get<std::vector<int64_t>>();
    const auto full = tok.encode(prompt);
    const auto padded = tok.encode_padded(prompt);
    EXPECT_EQ(full, want_full);
    EXPECT_EQ(padded.input_ids, want_padded);
    EXPECT_EQ(padded.tokens, want_full.size());
    if (full == want_full && padded.input_ids == want_padded) ++passed;
  }
  std::cout << model << ": " << passed << "/" << cases.size() << " golden cases match\n";
  EXPECT_EQ(passed, cases.size());
}

TEST(clip_tokenizer, golden_cases_sd1) {
  check_golden("tiny-sd1");
}
TEST(clip_tokenizer, golden_cases_sd2) {
  check_golden("tiny-sd2");
}

TEST(clip_tokenizer, config_values) {
  for (const char* model : {"tiny-sd1", "tiny-sd2"}) {
    const ClipTokenizer& tok = tokenizer(model);
    EXPECT_EQ(tok.max_length(), 77);
    EXPECT_EQ(tok.bos_id(), 49406);
    EXPECT_EQ(tok.eos_id(), 49407);
    EXPECT_EQ(tok.vocab_size(), 49408);
  }
  EXPECT_EQ(tokenizer("tiny-sd1").pad_id(), 49407);  // "<|endoftext|>"
  EXPECT_EQ(tokenizer("tiny-sd2").pad_id(), 0);      // "!"
}

TEST(clip_tokenizer, sd1_and_sd2_differ_only_in_padding_and_bang) {
  const auto a = tokenizer("tiny-sd1").encode_padded("a red fox");
  const auto b = tokenizer("tiny-sd2").encode_padded("a red fox");
  ASSERT_EQ(a.tokens, 5u);
  ASSERT_EQ(b.tokens, 5u);
  for (size_t i = 0; i < 77; ++i) {
    if (i < a.tokens) {
      EXPECT_EQ(a.input_ids[i], b.input_ids[i]) << i;
    } else {
      EXPECT_EQ(a.input_ids[i], 49407) << i;
      EXPECT_EQ(b.input_ids[i], 0) << i;
    }
  }
  // SD 2.x's pad token "!" is a special added token: cut out of the text wherever it appears.
  EXPECT_EQ(tokenizer("tiny-sd1").encode("wow!!"),
            (std::vector<int64_t>{49406, tokenizer("tiny-sd1").encode("wow")[1], 748, 49407}));
  const auto sd2 = tokenizer("tiny-sd2").encode("wow!!");
  ASSERT_EQ(sd2.size(), 5u);
  EXPECT_EQ(sd2[2], 0);
  EXPECT_EQ(sd2[3], 0);
}

TEST(clip_tokenizer, truncation_keeps_eos_last) {
  std::string prompt;
  for (int i = 0; i < 200; ++i) prompt += "cat ";
  const auto e = tokenizer("tiny-sd1").encode_padded(prompt);
  EXPECT_EQ(e.tokens, 202u);
  ASSERT_EQ(e.input_ids.size(), 77u);
  EXPECT_EQ(e.input_ids.front(), 49406);
  EXPECT_EQ(e.input_ids.back(), 49407);
  EXPECT_EQ(e.input_ids[75], e.input_ids[1]);
}

TEST(clip_tokenizer, special_tokens_in_text) {
  const ClipTokenizer& tok = tokenizer("tiny-sd1");
  const int64_t a = tok.encode("a")[1], b = tok.encode("b")[1];
  EXPECT_EQ(tok.encode("a<|endoftext|>b"), (std::vector<int64_t>{49406, a, 49407, b, 49407}));
  EXPECT_EQ(tok.encode("<|startoftext|>"), (std::vector<int64_t>{49406, 49406, 49407}));
  // Matching is case-sensitive and happens before lowercasing, so this is ordinary text, split
  // into "<|", "endoftext", "|>" by the byte-level pre-tokenizer.
  const auto upper = tok.encode("<|ENDOFTEXT|>");
  EXPECT_EQ(std::count(upper.begin(), upper.end(), 49407), 1);
  EXPECT_GT(upper.size(), 4u);
}

TEST(clip_tokenizer, nfc_and_lowercase) {
  const ClipTokenizer& tok = tokenizer("tiny-sd1");
  // Decomposed e + U+0301 composes to é before splitting.
  EXPECT_EQ(tok.encode("cafe\xCC\x81"), tok.encode("caf\xC3\xA9"));
  EXPECT_EQ(tok.encode("CAF\xC3\x89"), tok.encode("caf\xC3\xA9"));
  EXPECT_EQ(tok.encode("\xCE\x95\xCE\xBB"), tok.encode("\xCE\xB5\xCE\xBB"));  // Greek
  // Non-ASCII whitespace (NBSP, ideographic space) separates words like a space.
  EXPECT_EQ(tok.encode("red\xC2\xA0"
                       "fox\xE3\x80\x80"
                       "den"),
            tok.encode("red fox den"));
}

TEST(clip_tokenizer, malformed_utf8_is_replaced_not_fatal) {
  const ClipTokenizer& tok = tokenizer("tiny-sd1");
  // Each maximal ill-formed subsequence reads as one U+FFFD (EF BF BD), as Python's "replace".
  EXPECT_EQ(tok.encode("a\xFF\xFE b"), tok.encode("a\xEF\xBF\xBD\xEF\xBF\xBD b"));
  EXPECT_EQ(tok.encode("x\xE2\x82"), tok.encode("x\xEF\xBF\xBD"));            // truncated
  EXPECT_EQ(tok.encode("\xC0\xAF"), tok.encode("\xEF\xBF\xBD\xEF\xBF\xBD"));  // overlong
  EXPECT_EQ(tok.encode("\xED\xA0\x80"), tok.encode("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));
  const std::string nul("a\0b", 3);
  EXPECT_EQ(tok.encode(nul).size(), 5u);  // U+0000 is a symbol of its own
}

TEST(clip_tokenizer, random_bytes_never_break_it) {
  const ClipTokenizer& tok = tokenizer("tiny-sd2");
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  // Mostly valid text from a few scripts, with stray bytes and specials mixed in.
  // clang-format off
  const std::vector<std::string> pieces = {
      "a", "Z", " ", "!", "'s", "\t", "7", "<|endoftext|>",                         // ASCII
      "\xC3\xA9", "e\xCC\x81", "\xE6\x97\xA5", "\xF0\x9F\x98\x80", "\xEA\xB0\x80",  // valid
      "\xFF", "\xC3", "\xED\xA0\x80"};                                            // invalid
  // clang-format on
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const uint32_t len = next() % 40;
    for (uint32_t i = 0; i < len; ++i) {
      if (next() % 4 == 0)
        text.push_back(static_cast<char>(next() & 0xFF));
      else
        text += pieces[next() % pieces.size()];
    }
    const auto ids = tok.encode(text);
    ASSERT_GE(ids.size(), 2u);
    EXPECT_EQ(ids.front(), tok.bos_id());
    EXPECT_EQ(ids.back(), tok.eos_id());
    for (int64_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.vocab_size());
    EXPECT_NO_THROW(tok.decode(ids));
    EXPECT_EQ(tok.encode_padded(text).input_ids.size(), 77u);
  }
}

// A pathological 20000-character word still tokenizes (its speed is bench/'s
// BM_TokenizeLongWord: wall-clock bounds flake on loaded machines and under sanitizers).
TEST(clip_tokenizer, long_word_tokenizes) {
  const std::string word(20000, 'a');
  const auto ids = tokenizer("tiny-sd1").encode(word);
  EXPECT_GT(ids.size(), 2u);
  EXPECT_EQ(ids.front(), tokenizer("tiny-sd1").bos_id());
  EXPECT_EQ(ids.back(), tokenizer("tiny-sd1").eos_id());
}

TEST(clip_tokenizer, decode_round_trip) {
  const ClipTokenizer& tok = tokenizer("tiny-sd1");
  EXPECT_EQ(tok.decode(tok.encode("a photo of an astronaut, 8k!")),
            "a photo of an astronaut , 8 k !");
  EXPECT_EQ(tok.decode(tok.encode("caf\xC3\xA9 \xF0\x9F\x98\x80")), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_THROW(tok.decode({1 << 20}), ConfigError);
}

// The whole CLIP vocabulary is read (load time is bench/'s BM_TokenizerLoad).
TEST(clip_tokenizer, load_reads_the_whole_vocabulary) {
  const ClipTokenizer tok = ClipTokenizer::load(tokenizer_dir("tiny-sd1"));
  EXPECT_EQ(tok.vocab_size(), 49408);
}

// ---------------------------------------------------------------------------------------------
// Errors: each names the file at fault.

std::string copy_tokenizer(const std::string& name) {
  const fs::path dir = fs::path(test::temp_dir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(tokenizer_dir("tiny-sd1")))
    fs::copy_file(e.path(), dir / e.path().filename());
  return dir.string();
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

void expect_file_error(const std::string& dir, const std::string& file) {
  try {
    ClipTokenizer::load(dir);
    ADD_FAILURE() << "no error for bad " << file;
  } catch (const FileError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(clip_tokenizer_errors, missing_vocab) {
  const std::string dir = copy_tokenizer("no_vocab");
  fs::remove(fs::path(dir) / "vocab.json");
  expect_file_error(dir, "vocab.json");
}

TEST(clip_tokenizer_errors, missing_merges) {
  const std::string dir = copy_tokenizer("no_merges");
  fs::remove(fs::path(dir) / "merges.txt");
  expect_file_error(dir, "merges.txt");
}

TEST(clip_tokenizer_errors, corrupt_vocab_json) {
  const std::string dir = copy_tokenizer("bad_vocab");
  write_file(fs::path(dir) / "vocab.json", "{\"a\": 1,\n \"b\": ");
  expect_file_error(dir, "vocab.json");
  write_file(fs::path(dir) / "vocab.json", "[1, 2, 3]");
  expect_file_error(dir, "vocab.json");
  write_file(fs::path(dir) / "vocab.json", "{\"a\": \"x\"}");
  expect_file_error(dir, "vocab.json");
}

TEST(clip_tokenizer_errors, bad_merges_line) {
  const std::string dir = copy_tokenizer("bad_merges");
  write_file(fs::path(dir) / "merges.txt", "#version: 0.2\ni n\nthree part line\n");
  expect_file_error(dir, "merges.txt:3");
  write_file(fs::path(dir) / "merges.txt", "#version: 0.2\nqqqq zzzz\n");
  expect_file_error(dir, "merges.txt:2");
}

TEST(clip_tokenizer_errors, corrupt_config) {
  const std::string dir = copy_tokenizer("bad_config");
  write_file(fs::path(dir) / "tokenizer_config.json", "{ not json");
  expect_file_error(dir, "tokenizer_config.json");
  write_file(fs::path(dir) / "tokenizer_config.json", "{\"pad_token\": 5}");
  expect_file_error(dir, "tokenizer_config.json");
  write_file(fs::path(dir) / "tokenizer_config.json", "{\"model_max_length\": 1}");
  expect_file_error(dir, "tokenizer_config.json");
  write_file(fs::path(dir) / "tokenizer_config.json", "{}");
  write_file(fs::path(dir) / "special_tokens_map.json", "{\"pad_token\": \"<|nope|>\"}");
  expect_file_error(dir, "vocab.json");
}

TEST(clip_tokenizer_errors, config_files_are_optional) {
  const std::string dir = copy_tokenizer("no_config");
  fs::remove(fs::path(dir) / "tokenizer_config.json");
  fs::remove(fs::path(dir) / "special_tokens_map.json");
  const ClipTokenizer tok = ClipTokenizer::load(dir);
  EXPECT_EQ(tok.max_length(), 77);
  EXPECT_EQ(tok.pad_id(), 49407);
  EXPECT_EQ(tok.encode("a photo"), tokenizer("tiny-sd1").encode("a photo"));
}

TEST(clip_tokenizer_errors, config_options) {
  const std::string dir = copy_tokenizer("options");
  write_file(fs::path(dir) / "tokenizer_config.json",
             "{\"do_lower_case\": false, \"model_max_length\": 1e30}");
  const ClipTokenizer tok = ClipTokenizer::load(dir);
  EXPECT_EQ(tok.max_length(), 77);  // transformers' "unset" sentinel keeps CLIP's 77
  EXPECT_NE(tok.encode("Photo"), tok.encode("photo"));
  EXPECT_EQ(tokenizer("tiny-sd1").encode("Photo"), tok.encode("photo"));
  write_file(fs::path(dir) / "tokenizer_config.json",
             "{\"model_max_length\": 64, \"pad_token\": {\"content\": \"!\", \"lstrip\": false}}");
  fs::remove(fs::path(dir) / "special_tokens_map.json");
  const ClipTokenizer short_tok = ClipTokenizer::load(dir);
  EXPECT_EQ(short_tok.max_length(), 64);
  EXPECT_EQ(short_tok.pad_id(), 0);
  EXPECT_EQ(short_tok.encode_padded("a cat").input_ids.size(), 64u);
}

TEST(clip_tokenizer_errors, missing_directory) {
  expect_file_error(test::temp_dir() + "/does_not_exist", "vocab.json");
}

}  // namespace
}  // namespace diffuse
