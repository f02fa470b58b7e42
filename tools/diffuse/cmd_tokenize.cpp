// diffuse tokenize: show the CLIP token ids of a prompt and check it against the 77-token limit.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "diffuse/diffuse.hpp"

namespace diffuse::cli {

Command add_tokenize(CLI::App& app) {
  struct Args {
    std::string model, prompt;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand("tokenize", "Print the CLIP token ids of a prompt");
  c->add_option(
      "--model,-m", a->model,
      "diffusers model folder (or its tokenizer/ folder); default: bundled CLIP vocabulary");
  c->add_option("prompt", a->prompt, "the prompt")->required();
  c->add_flag("--json", a->json, "print {\"input_ids\": [...], \"tokens\": N}");
  return [a] {
    const Tokenizer tok =
        Tokenizer::load(a->model.empty() ? assets_dir() + "/tokenizer" : a->model);
    const auto e = tok.encode(a->prompt);
    if (a->json) {
      std::cout << nlohmann::json{{"input_ids", e.input_ids}, {"tokens", e.tokens}}.dump() << "\n";
      return 0;
    }
    for (size_t i = 0; i < e.input_ids.size(); ++i) std::cout << (i ? " " : "") << e.input_ids[i];
    std::cout << "\n" << e.tokens << " tokens (limit " << tok.max_length() << ")";
    if (static_cast<int64_t>(e.tokens) > tok.max_length())
      std::cout << ": " << e.tokens - static_cast<size_t>(tok.max_length()) << " will be truncated";
    std::cout << "\n";
    return 0;
  };
}

}  // namespace diffuse::cli
