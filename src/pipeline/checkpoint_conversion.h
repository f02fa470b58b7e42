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

/// "sd1" (CLIP ViT-L text encoder: cond_stage_model.transformer.*) or "sd2" (OpenCLIP:
/// cond_stage_model.model.*). SDXL and other layouts are a ConfigError/FileError naming `path`.
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
/// cond_stage_model.* -> CLIPTextModel keys ("text_model.*"). For OpenCLIP (SD 2.x) the fused
/// in_proj is split into q/k/v and the last resblock is dropped: SD 2.x conditions on the
/// penultimate layer, which the diffusers layout stores as the last one.
WeightStore convert_ldm_text_encoder(const StateDict& sd, const std::string& family,
                                     const std::string& path);

}  // namespace diffuse
