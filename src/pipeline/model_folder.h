// A Stable Diffusion model as diffusers lays it out on disk, loaded into memory.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "diffuse/diffuse.hpp"
#include "io/weight_store.h"
#include "models/clip/clip_text_model.h"
#include "models/unet/unet_2d_condition.h"
#include "models/vae/autoencoder_kl.h"
#include "tokenizer/clip_tokenizer.h"

namespace diffuse {

struct StableDiffusionModel {
  std::string name;    // folder name
  std::string family;  // "sd1" (CLIP ViT-L, 768-d context) or "sd2" (OpenCLIP ViT-H, 1024-d)
  ClipTokenizer tokenizer;
  ClipTextModel text_encoder;
  UNet2DConditionModel unet;
  AutoencoderKL vae;
  nlohmann::json scheduler_config;  // scheduler/scheduler_config.json, class in "_class_name"

  int vae_scale_factor() const;  // 2^(VAE levels - 1) = 8 for SD
  int default_size() const;      // unet sample_size * vae_scale_factor
};

/// Component weights supplied from elsewhere (a converted single-file checkpoint): the folder's
/// component subfolders then only need their config.json.
struct ComponentWeights {
  const WeightStore* text_encoder = nullptr;
  const WeightStore* unet = nullptr;
  const WeightStore* vae = nullptr;
};

/// Loads `dir` (model_index.json + component folders). Unsupported pipelines (e.g. SDXL) and
/// missing or inconsistent components are a FileError/ConfigError naming the file. With
/// `weights`, the components take their weights from it instead of their folders.
StableDiffusionModel load_stable_diffusion_folder(const std::string& dir,
                                                  const LoadOptions& options = {},
                                                  const ComponentWeights* weights = nullptr);

}  // namespace diffuse
