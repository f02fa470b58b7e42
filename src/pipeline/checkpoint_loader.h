// Loading a single-file Stable Diffusion checkpoint (.safetensors or torch .ckpt in the original
// LDM layout) with the architecture of a diffusers config folder.
#pragma once

#include <string>
#include <variant>

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
  std::string family;  // detect_checkpoint_family's
  WeightStore text_encoder, unet, vae;
  WeightStore text_encoder_2;  // SDXL (a refiner has only this one; text_encoder stays empty)
};
ConvertedCheckpoint convert_checkpoint(const StateDict& sd, const std::string& path,
                                       const std::string& config_dir);

/// The config folder to use for `family`: options.config_dir, else
/// options.assets_dir/configs/{sd15|sd21-768v|sdxl-base|sdxl-refiner}; ConfigError when neither is
/// set.
std::string checkpoint_config_dir(const std::string& family, const std::string& path,
                                  const LoadOptions& options);

/// Reads, converts and instantiates the checkpoint at `path`: an SD 1.x/2.x model or an SDXL one
/// (base or refiner), by its keys.
std::variant<StableDiffusionModel, StableDiffusionXLModel> load_checkpoint_model(
    const std::string& path, const LoadOptions& options);

}  // namespace diffuse
