// The VAE decoder (diffusers autoencoders/vae.py Decoder): latents -> image.
#pragma once

#include <vector>

#include "models/vae/vae_blocks.h"
#include "models/vae/vae_config.h"

namespace diffuse::vae {

struct Decoder {
  nn::Conv2d conv_in;
  MidBlock mid_block;
  std::vector<UpDecoderBlock> up_blocks;
  nn::GroupNorm conv_norm_out;
  nn::Conv2d conv_out;

  /// Loads `<prefix>.conv_in`, `.mid_block`, `.up_blocks.N`, `.conv_norm_out`, `.conv_out`.
  static Decoder load(const WeightStore& w, const std::string& prefix, const VaeConfig& c);
  /// [B, latent_channels, h, w] -> [B, out_channels, h * f, w * f]
  Tensor operator()(const Tensor& latents) const;
};

}  // namespace diffuse::vae
