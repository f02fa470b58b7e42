// A Stable Diffusion model as diffusers lays it out on disk, loaded into memory.
#pragma once

#include <memory>
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
  std::string name;  // folder name
  // "sd1" (CLIP ViT-L, 768-d context), "sd2" (OpenCLIP ViT-H, 1024-d) or "sdxl" (both CLIP ViT-L
  // and OpenCLIP ViT-bigG, 2048-d)
  std::string family;
  ClipTokenizer tokenizer;
  ClipTextModel text_encoder;
  UNet2DConditionModel unet;
  AutoencoderKL vae;
  nlohmann::json scheduler_config;  // scheduler/scheduler_config.json, class in "_class_name"
  /// The weights unet and text_encoder were built from, kept so that LoRAs can be applied (to
  /// copies) and removed without reading the model again.
  std::shared_ptr<const WeightStore> unet_weights, text_encoder_weights;

  /// How its attention layers compute (LoadOptions::attention, else the package's default).
  AttentionKernel attention = AttentionKernel::Sliced;

  int vae_scale_factor() const;  // 2^(VAE levels - 1) = 8 for SD
  int default_size() const;      // unet sample_size * vae_scale_factor
};

/// The time ids an SDXL UNet's added embedding takes (diffusers' _get_add_time_ids): original size,
/// crop and target size (base models), or original size, crop and aesthetic score (refiners).
constexpr int kBaseTimeIds = 6, kRefinerTimeIds = 5;

/// StableDiffusionXLPipeline / StableDiffusionXLImg2ImgPipeline: the SD components (tokenizer and
/// text_encoder being SDXL's first ones) plus the second tokenizer and text encoder
/// (CLIPTextModelWithProjection). A refiner has the second only: then text_encoder_2_only is set
/// and base.tokenizer / base.text_encoder are the second ones.
struct StableDiffusionXLModel {
  StableDiffusionModel base;
  ClipTokenizer tokenizer_2;
  ClipTextModel text_encoder_2;
  /// model_index.json's force_zeros_for_empty_prompt (diffusers' default: true): without a
  /// negative prompt, the unconditional embeddings are zeros instead of the encoding of "".
  bool force_zeros_for_empty_prompt = true;
  std::shared_ptr<const WeightStore> text_encoder_2_weights;
  /// model_index.json's requires_aesthetics_score (refiners): the UNet takes kRefinerTimeIds time
  /// ids, the last one an aesthetic score.
  bool requires_aesthetics_score = false;
  bool text_encoder_2_only = false;
};

/// Component weights supplied from elsewhere (a converted single-file checkpoint): the folder's
/// component subfolders then only need their config.json.
struct ComponentWeights {
  const WeightStore* text_encoder = nullptr;
  const WeightStore* text_encoder_2 = nullptr;  // SDXL
  const WeightStore* unet = nullptr;
  const WeightStore* vae = nullptr;
};

/// LoadOptions::variant, checked to be a plain name; a ConfigError naming the option otherwise.
std::string weight_variant(const LoadOptions& options);
/// An attention option (LoadOptions::attention, ConvertOptions::attention) parsed; ConfigError
/// naming the option and the choices otherwise.
AttentionKernel attention_kernel_option(const std::string& name);
/// LoadOptions::attention parsed; when empty, the "attention" a diffuse package folder `dir`
/// records in its diffuse.json, else Sliced. ConfigError naming the option, FileError naming a
/// manifest that is not one diffuse writes.
AttentionKernel attention_kernel(const LoadOptions& options, const std::string& dir);
/// LoadOptions::precision parsed; a ConfigError naming the option and the choices otherwise.
WeightPrecision weight_precision(const LoadOptions& options);

/// Loads `dir` (model_index.json + component folders). Unsupported pipelines (SDXL folders have
/// their own loader) and missing or inconsistent components are a FileError/ConfigError naming
/// the file. With `weights`, the components take their weights from it instead of their folders.
StableDiffusionModel load_stable_diffusion_folder(const std::string& dir,
                                                  const LoadOptions& options = {},
                                                  const ComponentWeights* weights = nullptr);

/// True when `dir` holds a model_index.json whose _class_name is StableDiffusionXLPipeline or
/// StableDiffusionXLImg2ImgPipeline.
bool is_stable_diffusion_xl_folder(const std::string& dir);

/// Loads a StableDiffusionXLPipeline or StableDiffusionXLImg2ImgPipeline folder (a refiner's
/// model_index.json lists no first tokenizer and text encoder). Every component folder is checked
/// to exist before any weight is read; a missing one (text_encoder_2, ...) is a FileError naming
/// it, and components that cannot work together (context width, added-embedding width) a
/// ConfigError.
/// With `weights`, the components take their weights from it instead of their folders.
StableDiffusionXLModel load_stable_diffusion_xl_folder(const std::string& dir,
                                                       const LoadOptions& options = {},
                                                       const ComponentWeights* weights = nullptr);

}  // namespace diffuse
