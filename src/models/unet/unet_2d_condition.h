// UNet2DConditionModel (diffusers models/unets/unet_2d_condition.py) for Stable Diffusion 1.x, 2.x
// and XL: the noise-prediction network, conditioned on a timestep and on text-encoder hidden
// states, and for SDXL (addition_embed_type "text_time") on added conditions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weight_store.h"
#include "models/unet/unet_config.h"

namespace diffuse {

/// diffusers' added_cond_kwargs for addition_embed_type "text_time" (SDXL).
struct UNetAddedConditions {
  Tensor text_embeds;  // [B, D]: text_encoder_2's projected pooled output
  Tensor time_ids;     // [B, N] F32: original size, crop top-left, target size (N = 6 for SDXL)
};

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
  /// Returns the prediction [B, out_channels, h, w]. Throws ShapeError naming the mismatch.
  Tensor forward(const Tensor& sample, const std::vector<double>& timesteps,
                 const Tensor& encoder_hidden_states,
                 const UNetAddedConditions* added = nullptr) const;

 private:
  struct Impl;
  const Impl& loaded() const;         // throws when default-constructed and never loaded
  std::shared_ptr<const Impl> impl_;  // immutable after loading, so copies share it
};

}  // namespace diffuse
