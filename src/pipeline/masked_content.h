// AUTOMATIC1111's "masked content" (inpainting_fill): what the masked region starts from when an
// inpainting run begins part-way (strength below 1). "original" is the image itself (diffusers'
// only behaviour); "fill" paints the region with the colours around it first (A1111's
// masking.fill: the image blurred at falling radii and laid over itself, byte for byte as Pillow);
// "latent-noise" and "latent-nothing" replace the region of the image's latents with fresh noise
// or zeros before they are noised to the starting timestep. At strength 1 the run starts from
// noise, as diffusers, and the latent modes change nothing ("fill" still changes the image the
// VAE encodes for the masked image and the blend).
#pragma once

#include <string>

#include "core/tensor.h"
#include "diffuse/diffuse.hpp"
#include "io/png_image.h"
#include "pipeline/inpainting.h"
#include "random/random_source.h"

namespace diffuse::stages {

/// Whether `mode` is one of original, fill, latent-noise, latent-nothing.
bool is_masked_content(const std::string& mode);

/// A1111's masking.fill(image, mask): the masked (white) region filled from the rest of the image
/// by blurring it at radii 256, 64, 16, 4, 2 and 0 and compositing the layers; the unmasked
/// region is unchanged. `mask` has the image's size.
Rgb8Image fill_masked_region(const Rgb8Image& image, const Rgb8Image& mask);

/// The region to replace in latents of h x w: `mask` (the image's size) resized with Pillow's
/// default BICUBIC filter to w x h, its first channel / 255 rounded to 0 or 1 (half to even), as
/// A1111 makes its latent mask: [1, 1, h, w].
Tensor latent_region(const Rgb8Image& mask, int64_t h, int64_t w, Device device);

/// The image latents with `region` (latent_region) replaced: "latent-noise" by standard normal
/// noise drawn from `rng`, "latent-nothing" by zeros; any other mode returns them unchanged.
Tensor replace_latent_region(const Tensor& image_latents, const Tensor& region,
                             const std::string& mode, RandomSource& rng);

/// What an inpainting run with GenerateOptions::masked_content encodes and starts from: the init
/// image tensor `image` (filled for "fill") and the latent replacement (the latent modes, with
/// noise from a generator of its own seeded with the seed, as A1111 draws it).
struct MaskedStart {
  Tensor image;
  StartContent content;
};
MaskedStart masked_start(const GenerateOptions& o, const Tensor& image, int vae_scale_factor,
                         Device device);

}  // namespace diffuse::stages
