#include "pipeline/model_folder.h"

#include <filesystem>

#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "io/json_config.h"
#include "pipeline/synthetic_weights.h"

namespace fs = std::filesystem;

namespace diffuse {

int StableDiffusionModel::vae_scale_factor() const {
  return 1 << (static_cast<int>(vae.config().block_out_channels.size()) - 1);
}

int StableDiffusionModel::default_size() const {
  // sample_size is the latent size the UNet was trained at (64 for SD 1.5 = 512 px).
  const int latent = unet.config().sample_size > 0 ? unet.config().sample_size : 64;
  return latent * vae_scale_factor();
}

namespace {

void require_component(const nlohmann::json& index, const std::string& path, const char* name,
                       const char* library, std::initializer_list<const char*> classes) {
  auto it = index.find(name);
  if (it == index.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_string())
    throw ConfigError(path + ": component '" + std::string(name) + "' missing or malformed");
  const std::string cls = (*it)[1].get<std::string>();
  for (const char* c : classes)
    if (cls == c) return;
  throw ConfigError(path + ": component '" + std::string(name) + "' has class " + cls + " (" +
                    library + "), which diffuse does not support");
}

}  // namespace

namespace {

ClipTokenizer load_tokenizer(const fs::path& dir, const std::string& fallback) {
  if (!fallback.empty() && !fs::exists(dir / "vocab.json")) return ClipTokenizer::load(fallback);
  return ClipTokenizer::load(dir.string());
}

// Components from their config.json and either the weight files beside it, the given weights
// (a converted checkpoint) or rule weights.
ClipTextModel load_text_encoder(const fs::path& dir, bool synthetic, const WeightStore* w) {
  if (!synthetic && !w) return ClipTextModel::load(dir.string());
  const ClipTextConfig config = ClipTextConfig::load((dir / "config.json").string());
  if (w) return ClipTextModel::from_weights(config, *w);
  return ClipTextModel::from_weights(config, synthetic_weight_store("text_model."));
}
UNet2DConditionModel load_unet(const fs::path& dir, bool synthetic, const WeightStore* w) {
  if (!synthetic && !w) return UNet2DConditionModel::load(dir.string());
  UNetConfig config = UNetConfig::load((dir / "config.json").string());
  if (w) return UNet2DConditionModel::from_weights(std::move(config), *w);
  return UNet2DConditionModel::from_weights(std::move(config), synthetic_weight_store());
}
AutoencoderKL load_vae(const fs::path& dir, bool synthetic, const WeightStore* w) {
  if (!synthetic && !w) return AutoencoderKL::load(dir.string());
  VaeConfig config = VaeConfig::load((dir / "config.json").string());
  if (w) return AutoencoderKL::from_weights(std::move(config), *w);
  return AutoencoderKL::from_weights(std::move(config), synthetic_weight_store());
}

}  // namespace

StableDiffusionModel load_stable_diffusion_folder(const std::string& dir,
                                                  const LoadOptions& options,
                                                  const ComponentWeights* weights) {
  if (!fs::is_directory(dir)) throw FileError(dir + ": model folder not found");
  const std::string index_path = (fs::path(dir) / "model_index.json").string();
  if (!fs::exists(index_path))
    throw FileError(index_path + ": missing (expected a diffusers model folder)");
  const nlohmann::json index = parse_json(read_text_file(index_path), index_path);
  const std::string cls = index.value("_class_name", "");
  if (cls == "StableDiffusionXLPipeline" || cls == "StableDiffusionXLImg2ImgPipeline")
    throw ConfigError(index_path + ": SDXL pipelines are not supported yet");
  if (cls != "StableDiffusionPipeline" && cls != "StableDiffusionImg2ImgPipeline")
    throw ConfigError(
        index_path + ": _class_name \"" + cls +
        "\" is not supported (supported: StableDiffusionPipeline, StableDiffusionImg2ImgPipeline)");
  require_component(index, index_path, "text_encoder", "transformers", {"CLIPTextModel"});
  require_component(index, index_path, "tokenizer", "transformers",
                    {"CLIPTokenizer", "CLIPTokenizerFast"});
  require_component(index, index_path, "unet", "diffusers", {"UNet2DConditionModel"});
  require_component(index, index_path, "vae", "diffusers", {"AutoencoderKL"});

  const fs::path root(dir);
  const std::string sched_path = (root / "scheduler" / "scheduler_config.json").string();
  if (!fs::exists(sched_path)) throw FileError(sched_path + ": missing");
  StableDiffusionModel m{
      root.filename().empty() ? root.parent_path().filename().string() : root.filename().string(),
      "",
      load_tokenizer(root / "tokenizer", options.tokenizer_fallback_dir),
      load_text_encoder(root / "text_encoder", options.synthetic_weights,
                        weights ? weights->text_encoder : nullptr),
      load_unet(root / "unet", options.synthetic_weights, weights ? weights->unet : nullptr),
      load_vae(root / "vae", options.synthetic_weights, weights ? weights->vae : nullptr),
      parse_json(read_text_file(sched_path), sched_path),
  };
  const int te_dim = m.text_encoder.config().hidden_size;
  for (int d : m.unet.config().cross_attention_dim)
    if (d != te_dim)
      throw ConfigError((root / "unet" / "config.json").string() + ": cross_attention_dim " +
                        std::to_string(d) + " does not match the text encoder's hidden_size " +
                        std::to_string(te_dim));
  if (m.unet.config().in_channels != m.vae.config().latent_channels)
    throw ConfigError((root / "unet" / "config.json").string() +
                      ": in_channels does not match the VAE's latent_channels");
  m.family = m.text_encoder.config().hidden_act == "gelu" ? "sd2" : "sd1";
  return m;
}

}  // namespace diffuse
