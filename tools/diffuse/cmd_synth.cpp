// diffuse synth: a full diffusers folder with rule-generated weights for any architecture config
// (e.g. ../shared/configs/sd15), for benchmarks without downloads.
#include <iostream>

#include "commands.h"
#include "diffuse/diffuse.hpp"

namespace diffuse::cli {

Command add_synth(CLI::App& app) {
  struct Args {
    std::string config, out, tokenizer, dtype = "f32";
  };
  auto a = std::make_shared<Args>();
  CLI::App* c =
      app.add_subcommand("synth", "Write a model folder with rule-generated random weights");
  c->add_option("--config", a->config, "folder with model_index.json and component configs")
      ->required();
  c->add_option("--out,-o", a->out, "output folder (must not exist yet)")->required();
  c->add_option("--tokenizer", a->tokenizer,
                "folder with vocab.json and merges.txt (default: bundled)");
  c->add_option("--dtype", a->dtype,
                "how the weight files store values: f32, f16 (as fp16 downloads) or bf16")
      ->capture_default_str();
  return [a] {
    const std::string tok = a->tokenizer.empty() ? assets_dir() + "/tokenizer" : a->tokenizer;
    synthesize_model(a->config, tok, a->out, a->dtype);
    std::cout << a->out << "\n";
    return 0;
  };
}

}  // namespace diffuse::cli
