// ControlNetModel (diffusers models/controlnets/controlnet.py): a copy of the UNet's encoder half
// that reads a control image (edges, depth, pose, ...) and produces residuals for the UNet's skip
// connections and mid block (UNet2DConditionModel::forward's `residuals`).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weight_store.h"
#include "models/controlnet/controlnet_config.h"
#include "models/unet/unet_2d_condition.h"

namespace diffuse {

/// diffusers' ControlNetOutput: down_block_res_samples (`down`, one per UNet skip connection, in
/// diffusers' order) and mid_block_res_sample (`mid`), ready to pass to the UNet.
using ControlNetOutput = UNetResiduals;

class ControlNetModel {
 public:
  /// Loads `<dir>/config.json` and the weights in `dir` (diffusers layout). ConfigError names the
  /// file and key, FileError a missing or mis-shaped weight. `attention`: how its attention
  /// layers compute (the pipeline's LoadOptions::attention).
  static ControlNetModel load(const std::string& dir,
                              AttentionKernel attention = AttentionKernel::Sliced);
  /// Builds the model from a parsed config and a weight store (diffusers keys); every weight is
  /// fetched (and its shape checked) here, once.
  static ControlNetModel from_weights(ControlNetConfig config, const WeightStore& weights);

  const ControlNetConfig& config() const;

  /// sample [B, in_channels, h, w], timesteps and encoder_hidden_states as for the UNet;
  /// controlnet_cond [B, conditioning_channels, H, W] in [0, 1] (RGB unless the config says bgr)
  /// with H, W = downscale() x h, w (8x for the usual 4-level conditioning embedding).
  /// Every residual is scaled by conditioning_scale; in guess mode (unless global pooling) the
  /// down residuals by torch.logspace(-1, 0, n + 1) * conditioning_scale, from 0.1x for the first
  /// to 1x for the mid block. `added` as for the UNet (SDXL's text_time ControlNets).
  /// Throws ShapeError naming the mismatch.
  ControlNetOutput forward(const Tensor& sample, const std::vector<double>& timesteps,
                           const Tensor& encoder_hidden_states, const Tensor& controlnet_cond,
                           float conditioning_scale = 1.0f, bool guess_mode = false,
                           const UNetAddedConditions* added = nullptr) const;

 private:
  struct Impl;
  const Impl& loaded() const;         // throws when default-constructed and never loaded
  std::shared_ptr<const Impl> impl_;  // immutable after loading, so copies share it
};

/// Guess mode's scales: torch.logspace(-1, 0, count) in float32, each times `scale` in float32,
/// as diffusers computes them (exposed for tests).
std::vector<float> controlnet_guess_mode_scales(size_t count, float scale);

}  // namespace diffuse
