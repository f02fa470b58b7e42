// Loading a single-file Stable Diffusion checkpoint (.safetensors or torch .ckpt in the original
// LDM layout) with the architecture of a diffusers config folder.
#pragma once

#include <string>

#include "diffuse/diffuse.hpp"
#include "pipeline/checkpoint_conversion.h"
#include "pipeline/model_folder.h"

namespace diffuse {

/// True for a regular file (not a folder): what Pipeline::load treats as a single-file checkpoint.
bool is_single_file_checkpoint(const std::string& path);

/// The LDM-layout state dict of a .safetensors file (zero-copy views) or a torch zip checkpoint
/// (read without running pickle code), chosen by the file's content. A torch checkpoint declaring
/// a tensor larger than any SD weight is refused before anything is inflated.
StateDict read_checkpoint_state_dict(const std::string& path);

/// The converted (diffusers-layout) weights of a checkpoint, for the architecture in `config_dir`.
struct ConvertedCheckpoint {
  std::string family;  // "sd1" or "sd2", from the keys
  WeightStore text_encoder, unet, vae;
};
ConvertedCheckpoint convert_checkpoint(const StateDict& sd, const std::string& path,
                                       const std::string& config_dir);

/// The config folder to use for `family`: options.config_dir, else
/// options.assets_dir/configs/{sd15|sd21-768v}; ConfigError when neither is set.
std::string checkpoint_config_dir(const std::string& family, const std::string& path,
                                  const LoadOptions& options);

/// Reads, converts and instantiates the checkpoint at `path`.
StableDiffusionModel load_stable_diffusion_checkpoint(const std::string& path,
                                                      const LoadOptions& options);

}  // namespace diffuse
