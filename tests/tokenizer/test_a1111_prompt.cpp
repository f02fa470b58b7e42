// A1111 prompt syntax: parse_prompt_attention against A1111's own documented examples and the
// parts its code computed for the reference prompts, and the 75-token chunks (comma backtracking,
// BREAK) against its tokenize_line (tests/data/reference/a1111-prompts.safetensors, made by
// tools/reference/make_a1111_prompt_references.py with A1111's modules).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/reference_data.h"
#include "diffuse/error.hpp"
#include "io/json_config.h"
#include "io/safetensors.h"
#include "tokenizer/a1111_prompt.h"

using namespace diffuse;

namespace {

using Parts = std::vector<std::pair<std::string, double>>;

Parts parts_of(const std::string& prompt) {
  Parts out;
  for (const auto& p : a1111::parse_prompt_attention(prompt).parts)
    out.emplace_back(p.text, p.weight);
  return out;
}

nlohmann::json reference_cases() {
  const std::string path = test::reference("a1111-prompts.safetensors");
  return parse_json(SafetensorsFile::open(path).metadata().at("json"), path).at("cases");
}

}  // namespace

TEST(a1111_prompt, parses_as_a1111s_documented_examples) {
  // The examples of parse_prompt_attention's docstring, with the weights Python computes.
  EXPECT_EQ(parts_of("normal text"), (Parts{{"normal text", 1.0}}));
  EXPECT_EQ(parts_of("an (important) word"),
            (Parts{{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}}));
  EXPECT_EQ(parts_of("(unbalanced"), (Parts{{"unbalanced", 1.1}}));
  EXPECT_EQ(parts_of("\\(literal\\]"), (Parts{{"(literal]", 1.0}}));
  EXPECT_EQ(parts_of("(unnecessary)(parens)"), (Parts{{"unnecessaryparens", 1.1}}));
  EXPECT_EQ(parts_of("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            (Parts{{"a ", 1.0},
                   {"house", 1.5730000000000004},
                   {" ", 1.1},
                   {"on", 1.0},
                   {" a ", 1.1},
                   {"hill", 0.55},
                   {", sun, ", 1.1},
                   {"sky", 1.4641000000000006},
                   {".", 1.1}}));
  EXPECT_EQ(parts_of(""), (Parts{{"", 1.0}}));
  EXPECT_EQ(parts_of("one BREAK two"), (Parts{{"one", 1.0}, {"BREAK", -1}, {"two", 1.0}}));
  EXPECT_EQ(parts_of("BREAKFAST"), (Parts{{"BREAKFAST", 1.0}}));  // only the whole word
}

TEST(a1111_prompt, unbalanced_brackets_are_flagged_and_bad_weights_refused) {
  EXPECT_TRUE(a1111::parse_prompt_attention("(open").unbalanced);
  EXPECT_TRUE(a1111::parse_prompt_attention("close)").unbalanced);
  EXPECT_TRUE(a1111::parse_prompt_attention("[open").unbalanced);
  EXPECT_FALSE(a1111::parse_prompt_attention("a (b:1.2) [c] \\(d\\)").unbalanced);
  test::expect_error_mentioning<ConfigError>([] { a1111::parse_prompt_attention("(word:1.2.3)"); },
                                             {"1.2.3", "not a number"});
  test::expect_error_mentioning<ConfigError>([] { a1111::parse_prompt_attention("(word:.)"); },
                                             {"not a number"});
}

TEST(a1111_prompt, parts_and_chunks_match_a1111s_code) {
  const nlohmann::json cases = reference_cases();
  ASSERT_FALSE(cases.empty());
  std::map<std::string, ClipTokenizer> tokenizers;
  for (const char* model : {"tiny-sd1", "tiny-sd2"})
    tokenizers.emplace(
        model, ClipTokenizer::load(test::fixture(std::string("models/") + model + "/tokenizer")));
  for (const auto& c : cases) {
    const std::string prompt = c.at("prompt");
    const a1111::ParsedPrompt parsed = a1111::parse_prompt_attention(prompt);
    ASSERT_EQ(parsed.parts.size(), c.at("parts").size()) << prompt;
    for (size_t i = 0; i < parsed.parts.size(); ++i) {
      EXPECT_EQ(parsed.parts[i].text, c.at("parts")[i][0].get<std::string>()) << prompt;
      EXPECT_EQ(parsed.parts[i].weight, c.at("parts")[i][1].get<double>()) << prompt;
    }
    for (const char* model : {"tiny-sd1", "tiny-sd2"}) {
      if (!c.contains(model)) continue;
      const std::vector<a1111::PromptChunk> chunks =
          a1111::tokenize_chunks(tokenizers.at(model), parsed);
      const auto& ref = c.at(model);
      ASSERT_EQ(chunks.size(), ref.at("tokens").size()) << model << ": " << prompt;
      for (size_t k = 0; k < chunks.size(); ++k) {
        EXPECT_EQ(chunks[k].tokens, ref.at("tokens")[k].get<std::vector<int64_t>>())
            << model << " chunk " << k << ": " << prompt;
        std::vector<float> multipliers;
        for (const auto& m : ref.at("multipliers")[k]) multipliers.push_back(m.get<float>());
        EXPECT_EQ(chunks[k].multipliers, multipliers) << model << " chunk " << k << ": " << prompt;
      }
    }
  }
}

TEST(a1111_prompt, a_multi_vector_embedding_stays_in_one_chunk) {
  // tokenize_line: an embedding whose vectors do not fit in what is left of the chunk starts the
  // next one (len(chunk.tokens) + emb_len > chunk_length: next_chunk()).
  const ClipTokenizer base = ClipTokenizer::load(test::fixture("models/tiny-sd1/tokenizer"));
  const int64_t v = base.vocab_size();
  const ClipTokenizer tok = base.with_added_token("tinystyle", {v, v + 1, v + 2});
  const std::vector<int64_t> horse = base.encode("horse");
  ASSERT_EQ(horse.size(), 3u);
  std::string words;
  for (int i = 0; i < 73; ++i) words += "horse ";
  // 73 words leave 2 places: the 3-vector embedding moves to chunk 2 whole, weighted 1.1.
  const auto chunks =
      a1111::tokenize_chunks(tok, a1111::parse_prompt_attention(words + "(tinystyle:1.1) horse"));
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].tokens[73], horse[1]);
  EXPECT_EQ(chunks[0].tokens[74], tok.eos_id());  // padding
  EXPECT_EQ(chunks[0].tokens[75], tok.eos_id());
  EXPECT_EQ(std::vector<int64_t>(chunks[1].tokens.begin() + 1, chunks[1].tokens.begin() + 5),
            (std::vector<int64_t>{v, v + 1, v + 2, horse[1]}));
  EXPECT_EQ(chunks[1].multipliers[1], 1.1f);
  EXPECT_EQ(chunks[1].multipliers[3], 1.1f);
  EXPECT_EQ(chunks[1].multipliers[4], 1.f);
  // With room left it stays where it is.
  const auto one =
      a1111::tokenize_chunks(tok, a1111::parse_prompt_attention("horse tinystyle horse"));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(std::vector<int64_t>(one[0].tokens.begin() + 1, one[0].tokens.begin() + 6),
            (std::vector<int64_t>{horse[1], v, v + 1, v + 2, horse[1]}));
}
