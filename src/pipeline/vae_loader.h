// A VAE from elsewhere than the model (LoadOptions::vae): a diffusers AutoencoderKL folder, a
// model folder's vae/, or one file in diffusers' or the original LDM layout.
#pragma once

#include <string>

#include "io/weight_store.h"
#include "models/vae/autoencoder_kl.h"

namespace diffuse {

struct VaeReplacement {
  std::string config_path;  // the replacement's config.json; empty: use the model's
  WeightStore weights;      // diffusers AutoencoderKL keys
};

/// Reads the VAE at `path` (see LoadOptions::vae); single files in the LDM layout are converted
/// with `model_config` (the model's own VAE config). FileError naming `path` when it is neither.
VaeReplacement read_vae_replacement(const std::string& path, const VaeConfig& model_config,
                                    const std::string& variant);

}  // namespace diffuse
