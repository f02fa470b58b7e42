#include "tokenizer/a1111_prompt.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "diffuse/error.hpp"

namespace diffuse::a1111 {

namespace {

constexpr double kRoundBracketMultiplier = 1.1;
constexpr double kSquareBracketMultiplier = 1 / 1.1;
constexpr size_t kChunkLength = 75;
constexpr size_t kCommaPaddingBacktrack = 20;  // A1111's opts.comma_padding_backtrack default

bool is_word_byte(unsigned char c) {
  // Python's \b on str: letters, digits and '_' (non-ASCII letters count; their UTF-8 bytes do).
  return std::isalnum(c) || c == '_' || c >= 0x80;
}

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

/// re.split(r"\s*\bBREAK\b\s*", text): the pieces between whole-word BREAKs, the whitespace
/// around each BREAK dropped.
std::vector<std::string> split_on_break(const std::string& text) {
  std::vector<std::string> pieces;
  size_t piece_start = 0, search = 0;
  for (;;) {
    const size_t at = text.find("BREAK", search);
    if (at == std::string::npos) break;
    const size_t end = at + 5;
    const bool word_start = at == 0 || !is_word_byte(static_cast<unsigned char>(text[at - 1]));
    const bool word_end =
        end == text.size() || !is_word_byte(static_cast<unsigned char>(text[end]));
    if (!word_start || !word_end) {
      search = at + 1;
      continue;
    }
    size_t before = at, after = end;
    while (before > piece_start && is_space(text[before - 1])) --before;
    while (after < text.size() && is_space(text[after])) ++after;
    pieces.push_back(text.substr(piece_start, before - piece_start));
    piece_start = search = after;
  }
  pieces.push_back(text.substr(piece_start));
  return pieces;
}

bool is_special(char c) {
  return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':';
}

/// At text[pos] == ':', the length of ":<[+-]?[.\d]+>)" (0 when it is not there) and its number.
size_t weight_close(const std::string& text, size_t pos, std::string& number) {
  size_t j = pos + 1;
  if (j < text.size() && (text[j] == '+' || text[j] == '-')) ++j;
  size_t k = j;
  while (k < text.size() && (std::isdigit(static_cast<unsigned char>(text[k])) || text[k] == '.'))
    ++k;
  if (k == j || k >= text.size() || text[k] != ')') return 0;
  number = text.substr(pos + 1, k - pos - 1);
  return k + 1 - pos;
}

double parse_weight(const std::string& number, const std::string& prompt) {
  // Python's float(): the whole string, optional sign, digits with at most one point.
  const char* begin = number.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  const size_t points = static_cast<size_t>(std::count(number.begin(), number.end(), '.'));
  if (end != begin + number.size() || points > 1 ||
      number.find_first_of("0123456789") == std::string::npos)
    throw ConfigError("prompt: emphasis weight '" + number + "' in \"" + prompt +
                      "\" is not a number (write e.g. (word:1.2))");
  return v;
}

}  // namespace

ParsedPrompt parse_prompt_attention(const std::string& prompt) {
  ParsedPrompt parsed;
  std::vector<WeightedText>& res = parsed.parts;
  std::vector<size_t> round_brackets, square_brackets;
  const auto multiply_range = [&res](size_t start, double multiplier) {
    for (size_t p = start; p < res.size(); ++p) res[p].weight *= multiplier;
  };
  const auto add_text = [&res](const std::string& text) {
    const std::vector<std::string> parts = split_on_break(text);
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i > 0) res.push_back({"BREAK", -1});
      res.push_back({parts[i], 1.0});
    }
  };
  size_t pos = 0;
  while (pos < prompt.size()) {
    const char c = prompt[pos];
    std::string number;
    if (c == '\\') {
      // "\(", "\)", "\[", "\]", "\\" are literal characters; a lone backslash adds nothing.
      const bool escape =
          pos + 1 < prompt.size() &&
          (prompt[pos + 1] == '(' || prompt[pos + 1] == ')' || prompt[pos + 1] == '[' ||
           prompt[pos + 1] == ']' || prompt[pos + 1] == '\\');
      res.push_back({escape ? std::string(1, prompt[pos + 1]) : std::string(), 1.0});
      pos += escape ? 2 : 1;
    } else if (c == '(') {
      round_brackets.push_back(res.size());
      ++pos;
    } else if (c == '[') {
      square_brackets.push_back(res.size());
      ++pos;
    } else if (size_t n = c == ':' ? weight_close(prompt, pos, number) : 0; n > 0) {
      if (!round_brackets.empty()) {
        multiply_range(round_brackets.back(), parse_weight(number, prompt));
        round_brackets.pop_back();
      } else {
        parsed.unbalanced = true;
        add_text(prompt.substr(pos, n));
      }
      pos += n;
    } else if (c == ')' && !round_brackets.empty()) {
      multiply_range(round_brackets.back(), kRoundBracketMultiplier);
      round_brackets.pop_back();
      ++pos;
    } else if (c == ']' && !square_brackets.empty()) {
      multiply_range(square_brackets.back(), kSquareBracketMultiplier);
      square_brackets.pop_back();
      ++pos;
    } else if (c == ')' || c == ']' || c == ':') {
      parsed.unbalanced = parsed.unbalanced || c != ':';
      add_text(std::string(1, c));
      ++pos;
    } else {
      size_t end = pos;
      while (end < prompt.size() && !is_special(prompt[end])) ++end;
      add_text(prompt.substr(pos, end - pos));
      pos = end;
    }
  }
  parsed.unbalanced = parsed.unbalanced || !round_brackets.empty() || !square_brackets.empty();
  for (size_t p : round_brackets) multiply_range(p, kRoundBracketMultiplier);
  for (size_t p : square_brackets) multiply_range(p, kSquareBracketMultiplier);
  if (res.empty()) res.push_back({"", 1.0});
  // Runs of identical weights merge.
  for (size_t i = 0; i + 1 < res.size();) {
    if (res[i].weight == res[i + 1].weight) {
      res[i].text += res[i + 1].text;
      res.erase(res.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    } else {
      ++i;
    }
  }
  return parsed;
}

std::vector<PromptChunk> tokenize_chunks(const ClipTokenizer& tokenizer,
                                         const ParsedPrompt& parsed) {
  const std::vector<int64_t> comma_ids = tokenizer.encode(",");
  const int64_t comma = comma_ids.size() == 3 ? comma_ids[1] : -1;
  std::vector<PromptChunk> chunks;
  PromptChunk chunk;
  std::ptrdiff_t last_comma = -1;
  const auto next_chunk = [&] {
    const size_t to_add = kChunkLength - std::min(kChunkLength, chunk.tokens.size());
    chunk.tokens.insert(chunk.tokens.end(), to_add, tokenizer.eos_id());
    chunk.multipliers.insert(chunk.multipliers.end(), to_add, 1.f);
    chunk.tokens.insert(chunk.tokens.begin(), tokenizer.bos_id());
    chunk.tokens.push_back(tokenizer.eos_id());
    chunk.multipliers.insert(chunk.multipliers.begin(), 1.f);
    chunk.multipliers.push_back(1.f);
    last_comma = -1;
    chunks.push_back(std::move(chunk));
    chunk = PromptChunk{};
  };
  for (const WeightedText& part : parsed.parts) {
    if (part.text == "BREAK" && part.weight == -1) {
      next_chunk();
      continue;
    }
    std::vector<int64_t> tokens = tokenizer.encode(part.text);  // bos + ids + eos
    const auto weight = static_cast<float>(part.weight);
    for (size_t position = 1; position + 1 < tokens.size(); ++position) {
      const int64_t token = tokens[position];
      const auto length = static_cast<std::ptrdiff_t>(chunk.tokens.size());
      if (token == comma) {
        last_comma = length;
      } else if (chunk.tokens.size() == kChunkLength && last_comma != -1 &&
                 static_cast<size_t>(length - last_comma) <= kCommaPaddingBacktrack) {
        // The words after the last comma move to the next chunk.
        const auto cut = static_cast<std::ptrdiff_t>(last_comma + 1);
        std::vector<int64_t> moved_tokens(chunk.tokens.begin() + cut, chunk.tokens.end());
        std::vector<float> moved_multipliers(chunk.multipliers.begin() + cut,
                                             chunk.multipliers.end());
        chunk.tokens.resize(static_cast<size_t>(cut));
        chunk.multipliers.resize(static_cast<size_t>(cut));
        next_chunk();
        chunk.tokens = std::move(moved_tokens);
        chunk.multipliers = std::move(moved_multipliers);
      }
      if (chunk.tokens.size() == kChunkLength) next_chunk();
      // A textual-inversion embedding stays whole: one that does not fit starts the next chunk.
      const size_t vectors = tokenizer.added_token_length_at(tokens, position);
      if (vectors > 0) {
        if (chunk.tokens.size() + vectors > kChunkLength) next_chunk();
        const auto first = tokens.begin() + static_cast<std::ptrdiff_t>(position);
        chunk.tokens.insert(chunk.tokens.end(), first,
                            first + static_cast<std::ptrdiff_t>(vectors));
        chunk.multipliers.insert(chunk.multipliers.end(), vectors, weight);
        position += vectors - 1;
        continue;
      }
      chunk.tokens.push_back(token);
      chunk.multipliers.push_back(weight);
    }
  }
  if (!chunk.tokens.empty() || chunks.empty()) next_chunk();
  return chunks;
}

}  // namespace diffuse::a1111
