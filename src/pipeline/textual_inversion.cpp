#include "pipeline/textual_inversion.h"

#include <filesystem>
#include <map>

#include "backend/ops.h"
#include "diffuse/error.hpp"
#include "io/pickle/torch_checkpoint.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace diffuse {

namespace {

/// [n, width] float32 vectors of `name` in `path`, checked.
Tensor as_vectors(Tensor v, const std::string& path, const std::string& name) {
  v = v.to(DType::F32).contiguous();
  if (v.ndim() == 1) v = v.reshape({1, v.dim(0)});
  if (v.ndim() != 2 || v.dim(0) < 1)
    throw FileError(path + ": embedding '" + name + "' has shape " + v.shape().str() +
                    ", expected [vectors, width]");
  return v;
}

/// The tensors of an embedding file by name, whatever its container.
std::map<std::string, Tensor> read_tensors(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".pt" || ext == ".bin") return read_torch_checkpoint(path);
  if (ext != ".safetensors")
    throw FileError(path + ": not an embedding file (expected .safetensors, .pt or .bin)");
  const SafetensorsFile f = SafetensorsFile::open(path);
  std::map<std::string, Tensor> tensors;
  for (const std::string& k : f.keys()) tensors.emplace(k, f.get(k));
  return tensors;
}

}  // namespace

TextualInversion read_textual_inversion(const std::string& path) {
  if (!fs::is_regular_file(path)) throw FileError(path + ": embedding file not found");
  const std::map<std::string, Tensor> tensors = read_tensors(path);
  TextualInversion ti;
  ti.path = path;
  const std::string stem = fs::path(path).stem().string();
  if (tensors.count("clip_l") || tensors.count("clip_g")) {
    if (tensors.size() != 2 || !tensors.count("clip_l") || !tensors.count("clip_g"))
      throw FileError(path + ": an SDXL embedding needs exactly clip_l and clip_g");
    ti.token = stem;  // A1111: the file name is the token
    ti.clip_l = as_vectors(tensors.at("clip_l"), path, "clip_l");
    ti.clip_g = as_vectors(tensors.at("clip_g"), path, "clip_g");
    if (ti.clip_l.dim(0) != ti.clip_g.dim(0))
      throw FileError(path + ": clip_l has " + std::to_string(ti.clip_l.dim(0)) +
                      " vectors and clip_g " + std::to_string(ti.clip_g.dim(0)) +
                      "; both encoders need the same count");
    return ti;
  }
  // A1111's .pt files: {"string_to_param": {"*": vectors}, "string_to_token": ..., "name": ...}
  // (flattened); its .safetensors files: {"emb_params": vectors}.
  for (const char* key : {"emb_params", "string_to_param.*"}) {
    if (tensors.count(key)) {
      ti.token = stem;
      ti.vectors = as_vectors(tensors.at(key), path, key);
      return ti;
    }
  }
  if (tensors.size() != 1)
    throw FileError(path + ": not a textual-inversion embedding (expected one tensor: emb_params " +
                    "or the token's own name; clip_l and clip_g for SDXL; found " +
                    std::to_string(tensors.size()) + ")");
  ti.token = tensors.begin()->first;  // diffusers: the tensor is named by its token
  ti.vectors = as_vectors(tensors.begin()->second, path, ti.token);
  return ti;
}

namespace {

const Tensor& vectors_for(const TextualInversion& ti, EmbeddingPart part, int64_t width) {
  const auto mismatch = [&](const std::string& what) {
    return ConfigError(ti.path + ": " + what + " (an embedding for another text encoder)");
  };
  if (part == EmbeddingPart::single && ti.sdxl())
    throw mismatch("an SDXL embedding (clip_l/clip_g), this model has one text encoder");
  if (part != EmbeddingPart::single && !ti.sdxl())
    throw mismatch("an embedding for one text encoder; SDXL models read clip_l/clip_g files");
  const Tensor& v = part == EmbeddingPart::single   ? ti.vectors
                    : part == EmbeddingPart::clip_l ? ti.clip_l
                                                    : ti.clip_g;
  if (v.dim(1) != width)
    throw mismatch("its vectors are " + std::to_string(v.dim(1)) +
                   " wide, this model's text encoder " + std::to_string(width));
  return v;
}

}  // namespace

void add_embeddings(const std::vector<std::string>& paths, EmbeddingPart part, WeightStore& store,
                    ClipTextConfig& config, ClipTokenizer& tokenizer) {
  if (paths.empty()) return;
  const std::string key = "text_model.embeddings.token_embedding.weight";
  Tensor table = store.get(key);
  for (const std::string& path : paths) {
    const TextualInversion ti = read_textual_inversion(path);
    const Tensor& vectors = vectors_for(ti, part, config.hidden_size);
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < vectors.dim(0); ++i) ids.push_back(config.vocab_size + i);
    try {
      tokenizer = tokenizer.with_added_token(ti.token, ids);
    } catch (const ConfigError& e) {
      throw ConfigError(path + ": " + e.what());
    }
    table = ops::concat(table, vectors, 0);
    config.vocab_size += static_cast<int>(vectors.dim(0));
  }
  store.add(key, table);
}

}  // namespace diffuse
