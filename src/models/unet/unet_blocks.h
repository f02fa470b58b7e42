// The UNet's down, mid and up blocks (diffusers models/unets/unet_2d_blocks.py):
// CrossAttnDownBlock2D / DownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D / UpBlock2D.
// Each is built for one level of a UNetConfig, with the channel arithmetic diffusers uses.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "models/unet/resampling.h"
#include "models/unet/resnet_block.h"
#include "models/unet/transformer_2d.h"
#include "models/unet/unet_config.h"

namespace diffuse::unet {

/// Down block i: resnets (each followed by a transformer when cross-attending), then a stride-2
/// downsampler on every level but the last. Pushes each resnet/transformer output and the
/// downsampler output onto `skips`, as diffusers' `output_states`.
struct DownBlock {
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;  // empty for DownBlock2D
  std::optional<Downsample2D> downsampler;

  static DownBlock load(const WeightStore& w, const std::string& prefix, const UNetConfig& c,
                        size_t level);
  Tensor forward(Tensor x, const Tensor& temb_act, const Tensor& context,
                 std::vector<Tensor>& skips) const;
};

/// resnet, then (transformer, resnet) pairs, at the last level's width.
struct MidBlock {
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;

  static MidBlock load(const WeightStore& w, const std::string& prefix, const UNetConfig& c);
  Tensor forward(Tensor x, const Tensor& temb_act, const Tensor& context) const;
};

/// Up block i (working at level n-1-i): layers_per_block + 1 resnets, each on the concatenation of
/// the running activation and the skip popped from `skips` (released right after), each followed by
/// a transformer when cross-attending; then an upsampler to the next skip's size, on every block
/// but the last.
struct UpBlock {
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;  // empty for UpBlock2D
  std::optional<Upsample2D> upsampler;

  static UpBlock load(const WeightStore& w, const std::string& prefix, const UNetConfig& c,
                      size_t index);
  Tensor forward(Tensor x, const Tensor& temb_act, const Tensor& context,
                 std::vector<Tensor>& skips) const;
};

}  // namespace diffuse::unet
