// The VAE's building blocks (diffusers unet_2d_blocks.py / attention_processor.py): the
// single-head spatial self-attention, UNetMidBlock2D, DownEncoderBlock2D and UpDecoderBlock2D.
// No time embedding anywhere; every norm uses eps 1e-6.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "models/unet/attention.h"
#include "models/unet/resampling.h"
#include "models/unet/resnet_block.h"

namespace diffuse::vae {

/// diffusers' VAE attention: x + to_out(attention(q, k, v)) over the H*W pixels, one head of all C
/// channels, on group_norm(x). Loads `to_q/to_k/to_v/to_out.0`, or the names of checkpoints saved
/// before diffusers 0.14 (`query/key/value/proj_attn`), as [C, C] or [C, C, 1, 1] weights.
struct SpatialAttention {
  nn::GroupNorm group_norm;
  unet::Attention attn;

  static SpatialAttention load(const WeightStore& w, const std::string& prefix, int64_t channels,
                               int groups);
  Tensor operator()(const Tensor& x) const;
};

/// resnet, attention, resnet at constant width (the attention is left out when
/// mid_block_add_attention is false).
struct MidBlock {
  unet::ResnetBlock2D resnet0, resnet1;
  std::optional<SpatialAttention> attention;

  static MidBlock load(const WeightStore& w, const std::string& prefix, int64_t channels,
                       int groups, bool add_attention);
  Tensor operator()(Tensor x) const;
};

/// `layers` resnets then, unless last, a stride-2 conv padded on the bottom/right only.
struct DownEncoderBlock {
  std::vector<unet::ResnetBlock2D> resnets;
  std::optional<unet::Downsample2D> downsampler;

  static DownEncoderBlock load(const WeightStore& w, const std::string& prefix, int64_t in,
                               int64_t out, int layers, int groups, bool downsample);
  Tensor operator()(Tensor x) const;
};

/// `layers` resnets then, unless last, 2x nearest upsampling and a conv.
struct UpDecoderBlock {
  std::vector<unet::ResnetBlock2D> resnets;
  std::optional<unet::Upsample2D> upsampler;

  static UpDecoderBlock load(const WeightStore& w, const std::string& prefix, int64_t in,
                             int64_t out, int layers, int groups, bool upsample);
  Tensor operator()(Tensor x) const;
};

}  // namespace diffuse::vae
