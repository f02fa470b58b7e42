// ResnetBlock2D (diffusers models/resnet.py), the residual block of both the UNet and the VAE:
//   h = conv1(silu(norm1(x)));  h += time_emb_proj(silu(temb))[:, :, None, None]  (UNet only)
//   h = conv2(silu(norm2(h)));  out = (shortcut(x) + h) / output_scale_factor
// with a 1x1 conv_shortcut when the channel count changes.
#pragma once

#include <optional>
#include <string>

#include "nn/layers.h"

namespace diffuse::unet {

struct ResnetBlock2D {
  nn::GroupNorm norm1, norm2;
  nn::Conv2d conv1, conv2;
  std::optional<nn::Linear> time_emb_proj;  // absent in the VAE (temb_channels = 0)
  std::optional<nn::Conv2d> conv_shortcut;  // present when in != out
  float output_scale_factor = 1.f;

  /// Loads `<prefix>.norm1`, `.conv1`, `.time_emb_proj` (when temb_channels > 0), `.norm2`,
  /// `.conv2`, `.conv_shortcut` (when in != out).
  static ResnetBlock2D load(const WeightStore& w, const std::string& prefix, int64_t in,
                            int64_t out, int64_t temb_channels, int groups, float eps,
                            double output_scale_factor = 1.0);

  /// x [B,in,H,W] -> [B,out,H,W]. `temb_act` is silu(time embedding) [B,temb_channels], computed
  /// once per UNet call because every block applies the same activation to it; null in the VAE.
  Tensor operator()(const Tensor& x, const Tensor* temb_act) const;
};

}  // namespace diffuse::unet
