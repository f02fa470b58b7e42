// What StableDiffusionControlNetPipeline adds to txt2img, step for step as diffusers runs it: the
// control images, and per UNet call the residuals of one or several ControlNets (summed, as
// MultiControlNetModel), each scaled by its conditioning scale while the step lies in its
// [start, end] guidance window; in guess mode only the conditional half is controlled.
#pragma once

#include <memory>
#include <vector>

#include "diffuse/diffuse.hpp"
#include "models/controlnet/controlnet_model.h"
#include "pipeline/stages.h"

namespace diffuse::stages {

/// One ControlNet of a run.
struct ControlUnit {
  std::shared_ptr<const ControlNetModel> model;
  Tensor image;  // [1, C, H, W] in [0, 1] (prepare_control_image)
  float scale = 1.f;
  // control_guidance_start / control_guidance_end, compared with step / evaluations in double as
  // Python does (0.2f would miss the boundary step that 0.2 keeps).
  double start = 0, end = 1;
};

/// The control map of `spec`: its image, or what its preprocessor makes of it (ConfigError naming
/// an unknown preprocessor).
Image control_map(const ControlNetSpec& spec);

/// diffusers' prepare_image: the control image resized to width x height with PIL's Lanczos filter
/// (when its size differs), scaled to [0, 1]: [1, 3, height, width].
Tensor prepare_control_image(const Image& image, int width, int height, Device device);

/// The residuals of `units` for each UNet call of a run of `evaluations` model evaluations, with
/// the run's conditioning `cond` (batch [uncond x n, cond x n] when `cfg`).
ResidualSource controlnet_residuals(std::vector<ControlUnit> units, Conditioning cond, bool cfg,
                                    bool guess_mode, int evaluations);

}  // namespace diffuse::stages
