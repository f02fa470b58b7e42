// The stages StableDiffusionInpaintPipeline adds to img2img, step for step as diffusers runs them:
// the mask processor, the latents of the image and of its masked copy, and how the mask conditions
// the loop: as extra UNet input channels (9-channel inpainting models) or by blending the
// re-noised original back outside the mask after every step (ordinary 4-channel models).
#pragma once

#include <functional>
#include <vector>

#include "diffuse/diffuse.hpp"
#include "io/png_image.h"
#include "pipeline/model_folder.h"
#include "pipeline/stages.h"
#include "random/random_source.h"
#include "schedulers/scheduler.h"

namespace diffuse::stages {

/// The mask blurred by `blur` pixels (mask_processor.blur) and resized to width x height with
/// PIL's Lanczos filter, before its grey conversion (prepare_mask's first steps).
Rgb8Image mask_at_size(const Image& mask, int width, int height, int blur);

/// diffusers' mask_processor.preprocess (after an optional mask_processor.blur of `blur` pixels):
/// the mask resized to width x height with PIL's Lanczos filter, converted to grayscale as PIL's
/// convert("L"), scaled to [0, 1] and binarised at 0.5 (white = repaint): [1, 1, height, width].
Tensor prepare_mask(const Image& mask, int width, int height, int blur, Device device);

/// The latents an inpainting run starts from and conditions on (diffusers' prepare_latents and
/// prepare_mask_latents), for `copies` images.
struct InpaintLatents {
  Tensor latents;               // [n, 4, h, w]: the loop's starting point
  Tensor noise;                 // [n, 4, h, w]: the noise drawn for it
  Tensor image_latents;         // [n, 4, h, w]: the scaled posterior sample of the image
  Tensor mask;                  // [n, 1, h, w]: the mask at latent size (nearest)
  Tensor masked_image_latents;  // [n, 4, h, w]: the same of the image with the mask region zeroed
};
/// `image` [1, 3, H, W] in [-1, 1], `mask` from prepare_mask. The generator is consumed as
/// diffusers does: the image's posterior sample when it is needed (a 4-channel model, or strength
/// below 1), then the noise, then the masked image's posterior sample. At full strength the
/// loop starts from noise * init_noise_sigma, otherwise from the image noised to `timestep`.
/// What the image latents become before they are noised to the first timestep (A1111's
/// latent masked content); empty: themselves.
using StartContent = std::function<Tensor(const Tensor& image_latents)>;
InpaintLatents prepare_inpaint_latents(const StableDiffusionModel& model, const Tensor& image,
                                       const Tensor& mask, int copies, bool full_strength,
                                       Scheduler& scheduler, double timestep, RandomSource& rng,
                                       const StartContent& start_content = {});

/// 9-channel models: the UNet input is [latents, mask, masked image latents] on the channel axis
/// (repeated over whatever batch the predictor is called with, e.g. both guidance halves).
NoisePredictor with_inpainting_channels(NoisePredictor unet, const Tensor& mask,
                                        const Tensor& masked_image_latents);

/// 4-channel models: after step i, the known region is the original re-noised to the next
/// timestep (the clean original after the last step), blended in where the mask is 0:
/// latents = (1 - mask) * original + mask * latents.
LatentHook keep_unmasked_region(const InpaintLatents& inpaint, Scheduler& scheduler,
                                std::vector<double> timesteps);

}  // namespace diffuse::stages
