// Single-file Stable Diffusion checkpoints in the original CompVis/LDM key layout
// (model.diffusion_model.*, first_stage_model.*, cond_stage_model.*) converted to the diffusers
// layout our models load, as diffusers' single_file_utils does. Tensors are renamed (and q/k/v
// split or 1x1 convs reshaped where the layouts differ), never copied unless reshaping needs it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/weight_store.h"
#include "models/unet/unet_config.h"
#include "models/vae/vae_config.h"

namespace diffuse {

using StateDict = std::map<std::string, Tensor>;

// Where SDXL checkpoints (Stability AI's "sgm" layout) keep their text encoders.
inline constexpr const char* kSdxlClipPrefix = "conditioner.embedders.0.transformer.";
inline constexpr const char* kSdxlOpenClipPrefix = "conditioner.embedders.1.model.";
inline constexpr const char* kSdxlRefinerOpenClipPrefix = "conditioner.embedders.0.model.";

/// "sd1" (CLIP ViT-L text encoder: cond_stage_model.transformer.*), "sd2" (OpenCLIP:
/// cond_stage_model.model.*), "sdxl" (CLIP ViT-L and OpenCLIP ViT-bigG under conditioner.*) or
/// "sdxl-refiner" (OpenCLIP ViT-bigG only). Other layouts are a FileError naming `path`.
std::string detect_checkpoint_family(const StateDict& sd, const std::string& path);

/// Splits "12.rest" into 12 and "rest"; nullopt when `key` does not start with "<int>.".
std::optional<std::pair<int, std::string>> split_index(const std::string& key);

/// The UNet's encoder half in the original layout (time_embed.*, input_blocks.*, middle_block.*,
/// relative to the model's prefix) -> diffusers keys, for the block layout of a config: shared by
/// the UNet and ControlNet conversions, whose encoders are laid out alike.
class LdmEncoderNames {
 public:
  explicit LdmEncoderNames(const UNetConfig& config);
  /// The diffusers key for `key`, or nullopt when it is not part of the encoder half.
  std::optional<std::string> operator()(const std::string& key) const;

 private:
  struct Slot {
    int level, j;
    bool sampler;  // the level's downsampler, else its resnet/attention layer j
  };
  std::vector<Slot> slots_;  // per input_blocks index
};

/// model.diffusion_model.* -> UNet2DConditionModel keys. The block layout (layers per block,
/// levels) comes from `config`; an unrecognised key is a FileError naming `path`.
WeightStore convert_ldm_unet(const StateDict& sd, const UNetConfig& config,
                             const std::string& path);
/// first_stage_model.* -> AutoencoderKL keys (loss.* weights are ignored).
WeightStore convert_ldm_vae(const StateDict& sd, const VaeConfig& config, const std::string& path);
/// cond_stage_model.* -> CLIPTextModel keys ("text_model.*"), for "sd1" or "sd2" (see
/// convert_open_clip_text_encoder).
WeightStore convert_ldm_text_encoder(const StateDict& sd, const std::string& family,
                                     const std::string& path);
/// A transformers CLIP text model stored under `prefix` (SD 1.x, SDXL's first encoder).
WeightStore convert_clip_text_encoder(const StateDict& sd, const std::string& prefix,
                                      const std::string& path);
/// An OpenCLIP text tower under `prefix` -> CLIPTextModel(WithProjection) keys: the fused in_proj
/// split into q/k/v. Without projection (SD 2.x) the last resblock is dropped (SD 2.x conditions on
/// the penultimate layer, which its diffusers layout stores as the last one) and text_projection
/// ignored; with it (SDXL's ViT-bigG) every layer is kept and text_projection becomes
/// text_projection.weight (transposed), as diffusers' convert_open_clip_checkpoint.
WeightStore convert_open_clip_text_encoder(const StateDict& sd, const std::string& prefix,
                                           bool with_projection, const std::string& path);

}  // namespace diffuse
