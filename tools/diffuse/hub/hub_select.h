// Which files of a repository to download: what a diffusers pipeline needs (model_index.json, each
// component's configs and tokenizer files, and one weight set per component), or the files matching
// --include patterns (huggingface_hub's allow_patterns).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace diffuse::hub {

struct Selection {
  std::vector<std::string> files;    // repository paths, in download order
  std::vector<std::string> choices;  // one line per component: what was taken, or why nothing
};

/// The pipeline's files among `repo_files`, for `model_index` (parsed model_index.json). Each
/// component folder gives its config files and one weight set: safetensors (the `variant` ones
/// where that component has them, e.g. diffusion_pytorch_model.fp16.safetensors, else the plain
/// ones; a sharded set is its index and shards), .bin only where it has no safetensors, never
/// .ckpt/.onnx/.msgpack/.h5, nothing for safety_checker.
Selection select_pipeline_files(const nlohmann::json& model_index,
                                const std::vector<std::string>& repo_files,
                                const std::string& variant);

/// The files matching any of `patterns` (fnmatch, '*' crossing '/', as huggingface_hub; a pattern
/// ending in '/' matches everything below that folder).
std::vector<std::string> select_matching(const std::vector<std::string>& repo_files,
                                         const std::vector<std::string>& patterns);

/// A variant name is letters, digits and '_' (e.g. fp16, non_ema).
bool valid_variant(const std::string& variant);

}  // namespace diffuse::hub
