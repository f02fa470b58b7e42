// UNet2DConditionModel (diffusers models/unets/unet_2d_condition.py) for Stable Diffusion 1.x, 2.x
// and XL: the noise-prediction network, conditioned on a timestep and on text-encoder hidden
// states, for SDXL (addition_embed_type "text_time") on added conditions, and optionally on
// ControlNet residuals.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weight_store.h"
#include "models/unet/added_conditions.h"
#include "models/unet/unet_config.h"

namespace diffuse {

/// diffusers' down_block_additional_residuals and mid_block_additional_residual: what a ControlNet
/// adds to the UNet. `down` holds one tensor per skip connection, in the order the down path
/// produces them (conv_in's output first, then each resnet/transformer output and downsampler
/// output of each level); `mid` is added to the mid block's output. Each is [B, C, h, w] like the
/// activation it is added to, or [B, C, 1, 1] (a global-pooling ControlNet), broadcast over h, w.
struct UNetResiduals {
  std::vector<Tensor> down;
  Tensor mid;
};

/// a + b tensor by tensor, as diffusers sums the residuals of several ControlNets
/// (MultiControlNetModel); a [B, C, 1, 1] tensor broadcasts over the other's h, w. Throws
/// ShapeError naming the first mismatch (count, or the shapes of one pair).
UNetResiduals add_residuals(const UNetResiduals& a, const UNetResiduals& b);

class UNet2DConditionModel {
 public:
  /// Loads `<dir>/config.json` and the weights in `dir` (diffusers layout). Errors name the file
  /// and key: ConfigError for the config, FileError for a missing or mis-shaped weight.
  static UNet2DConditionModel load(const std::string& dir);
  /// Builds the model from a parsed config and a weight store; every weight is fetched (and its
  /// shape checked) here, once.
  static UNet2DConditionModel from_weights(UNetConfig config, const WeightStore& weights);

  const UNetConfig& config() const;

  /// sample [B, in_channels, h, w] (any h, w >= 1); `timesteps` one per batch element (or a single
  /// one for the whole batch); encoder_hidden_states [B, L, cross_attention_dim].
  /// `added` is required by (and only accepted with) addition_embed_type "text_time".
  /// `residuals` (ControlNet) are added to the skip connections after the down path and to the
  /// mid block's output, as diffusers does; their count and shapes must match (ShapeError).
  /// Returns the prediction [B, out_channels, h, w]. Throws ShapeError naming the mismatch.
  Tensor forward(const Tensor& sample, const std::vector<double>& timesteps,
                 const Tensor& encoder_hidden_states, const UNetAddedConditions* added = nullptr,
                 const UNetResiduals* residuals = nullptr) const;

 private:
  struct Impl;
  const Impl& loaded() const;         // throws when default-constructed and never loaded
  std::shared_ptr<const Impl> impl_;  // immutable after loading, so copies share it
};

}  // namespace diffuse
