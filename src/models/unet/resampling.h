// Downsample2D and Upsample2D with convolution (diffusers models/downsampling.py, upsampling.py).
#pragma once

#include <string>

#include "nn/layers.h"

namespace diffuse::unet {

/// 3x3 convolution with stride 2. padding > 0 pads all sides (UNet: downsample_padding = 1);
/// padding 0 means diffusers' F.pad(x, (0, 1, 0, 1)): one row/column on the bottom/right only
/// (VAE).
struct Downsample2D {
  nn::Conv2d conv;
  static Downsample2D load(const WeightStore& w, const std::string& prefix, int64_t channels,
                           int padding);
  Tensor operator()(const Tensor& x) const { return conv(x); }
};

/// Nearest-neighbour upsampling then a 3x3 convolution.
struct Upsample2D {
  nn::Conv2d conv;
  static Upsample2D load(const WeightStore& w, const std::string& prefix, int64_t channels);
  /// 2x upsampling.
  Tensor operator()(const Tensor& x) const;
  /// Upsampling to out_h x out_w (diffusers' `upsample_size`, the next skip connection's size,
  /// which differs from 2x when the latent size is not a multiple of the UNet's total
  /// downsampling).
  Tensor operator()(const Tensor& x, int64_t out_h, int64_t out_w) const;
};

}  // namespace diffuse::unet
