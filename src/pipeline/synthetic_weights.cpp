#include "pipeline/synthetic_weights.h"

#include <zlib.h>

#include <cmath>
#include <filesystem>

#include "diffuse/error.hpp"
#include "models/clip/clip_text_model.h"
#include "models/unet/unet_2d_condition.h"
#include "models/vae/autoencoder_kl.h"
#include "random/torch_generator.h"

namespace fs = std::filesystem;

namespace diffuse {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

Tensor rule_weight(const std::string& key, const Shape& shape) {
  const auto seed = static_cast<uint64_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(key.data()), static_cast<uInt>(key.size())));
  TorchGenerator g(seed);
  Tensor t = g.randn(shape);
  float* p = t.f32();
  const int64_t n = t.numel();
  // Module name = the dotted part before ".weight".
  const bool is_weight = ends_with(key, ".weight");
  const std::string module = is_weight ? key.substr(0, key.size() - 7) : std::string();
  if (is_weight && module.find("norm") != std::string::npos) {
    for (int64_t i = 0; i < n; ++i) p[i] = 1.0f + 0.1f * p[i];
  } else if (ends_with(key, ".bias")) {
    for (int64_t i = 0; i < n; ++i) p[i] = 0.02f * p[i];
  } else {
    int64_t fan_in = 1;
    for (int d = shape.ndim() == 1 ? 0 : 1; d < shape.ndim(); ++d) fan_in *= shape[d];
    const float denom = static_cast<float>(std::sqrt(static_cast<double>(fan_in)));
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] / denom;
  }
  return t;
}

WeightStore synthetic_weight_store(const std::string& strip_prefix) {
  WeightStore store;
  store.set_synthesizer([strip_prefix](const std::string& name, const Shape& shape) {
    std::string key = name;
    if (!strip_prefix.empty() && key.rfind(strip_prefix, 0) == 0)
      key = key.substr(strip_prefix.size());
    return rule_weight(key, shape);
  });
  return store;
}

namespace {
void write_store(const WeightStore& store, const std::string& path, DType dtype) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& k : store.keys()) tensors.emplace_back(k, store.raw(k).to(dtype));
  write_safetensors(path, tensors, {{"format", "pt"}, {"generator", "diffuse rule weights"}});
}
void copy_into(const fs::path& from, const fs::path& to) {
  if (!fs::exists(from)) throw FileError(from.string() + ": missing");
  fs::create_directories(to.parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}
}  // namespace

void write_synthetic_model(const std::string& config_dir, const std::string& tokenizer_dir,
                           const std::string& out_dir, DType dtype) {
  const fs::path in(config_dir), out(out_dir);
  fs::create_directories(out);
  copy_into(in / "model_index.json", out / "model_index.json");
  copy_into(in / "scheduler" / "scheduler_config.json",
            out / "scheduler" / "scheduler_config.json");
  // Every tokenizer and text encoder the config folder has (SDXL: two; a refiner: the second).
  for (const char* tokenizer : {"tokenizer", "tokenizer_2"}) {
    if (!fs::is_directory(in / tokenizer)) continue;
    for (const char* f : {"vocab.json", "merges.txt"})
      copy_into(fs::path(tokenizer_dir) / f, out / tokenizer / f);
    for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"}) {
      const fs::path src =
          fs::exists(in / tokenizer / f) ? in / tokenizer / f : fs::path(tokenizer_dir) / f;
      if (fs::exists(src)) copy_into(src, out / tokenizer / f);
    }
  }
  for (const char* encoder : {"text_encoder", "text_encoder_2"}) {
    if (!fs::is_directory(in / encoder)) continue;
    copy_into(in / encoder / "config.json", out / encoder / "config.json");
    WeightStore w = synthetic_weight_store("text_model.");
    ClipTextModel::from_weights(ClipTextConfig::load((in / encoder / "config.json").string()), w,
                                /*with_projection=*/std::string(encoder) == "text_encoder_2");
    write_store(w, (out / encoder / "model.safetensors").string(), dtype);
  }
  {
    copy_into(in / "unet" / "config.json", out / "unet" / "config.json");
    WeightStore w = synthetic_weight_store();
    UNet2DConditionModel::from_weights(UNetConfig::load((in / "unet" / "config.json").string()), w);
    write_store(w, (out / "unet" / "diffusion_pytorch_model.safetensors").string(), dtype);
  }
  {
    copy_into(in / "vae" / "config.json", out / "vae" / "config.json");
    WeightStore w = synthetic_weight_store();
    AutoencoderKL::from_weights(VaeConfig::load((in / "vae" / "config.json").string()), w);
    write_store(w, (out / "vae" / "diffusion_pytorch_model.safetensors").string(), dtype);
  }
}

}  // namespace diffuse
