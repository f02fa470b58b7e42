// The VAE encoder (diffusers autoencoders/vae.py Encoder): image -> 2 * latent_channels moments.
#pragma once

#include <vector>

#include "models/vae/vae_blocks.h"
#include "models/vae/vae_config.h"

namespace diffuse::vae {

struct Encoder {
  nn::Conv2d conv_in;
  std::vector<DownEncoderBlock> down_blocks;
  MidBlock mid_block;
  nn::GroupNorm conv_norm_out;
  nn::Conv2d conv_out;

  /// Loads `<prefix>.conv_in`, `.down_blocks.N`, `.mid_block`, `.conv_norm_out`, `.conv_out`.
  static Encoder load(const WeightStore& w, const std::string& prefix, const VaeConfig& c);
  /// [B, in_channels, H, W] -> [B, 2 * latent_channels, H / f, W / f]
  Tensor operator()(const Tensor& image) const;
};

}  // namespace diffuse::vae
