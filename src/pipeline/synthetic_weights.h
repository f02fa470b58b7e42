// Weights defined by a rule instead of a file, so full-size models exist without downloads (for
// benchmarks) and the demo model is reproducible bit for bit. The rule is the one the reference
// fixtures use (../shared/fixtures/README.md, "golden-full"): for a parameter named N of shape S,
// a fresh torch generator seeded with crc32(N) draws randn(S), then
//   norm weights  -> 1 + 0.1 * r,   biases -> 0.02 * r,   others -> r / sqrt(fan_in).
#pragma once

#include <string>

#include "core/tensor.h"
#include "io/weight_store.h"

namespace diffuse {

/// The rule for one tensor. `key` is the rule's name for it (the text encoder's keys without
/// their leading "text_model.").
Tensor rule_weight(const std::string& key, const Shape& shape);

/// A WeightStore that synthesizes every weight a model asks for with rule_weight, stripping
/// `strip_prefix` from the requested name to form the rule key.
WeightStore synthetic_weight_store(const std::string& strip_prefix = {});

/// Writes a complete diffusers folder at `out_dir` for the architecture in `config_dir` (a folder
/// with model_index.json, */config.json, scheduler/scheduler_config.json), with rule weights and
/// the tokenizer files from `tokenizer_dir` (vocab.json, merges.txt), stored as `dtype` (F32, F16
/// or BF16, rounded to nearest even). Existing files are replaced.
void write_synthetic_model(const std::string& config_dir, const std::string& tokenizer_dir,
                           const std::string& out_dir, DType dtype = DType::F32);

}  // namespace diffuse
