// AUTOMATIC1111's "hires fix" (enable_hr) as a composition of stages: the image is generated at
// the requested size, upscaled (its latents by nearest or bilinear interpolation, or the decoded
// image with PIL's Lanczos filter), and refined by an image-to-image pass at the larger size.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace diffuse::stages {

/// torch.nn.functional.interpolate(latents, size=(out_h, out_w), mode="nearest" or "bilinear",
/// align_corners=False) of [B, C, h, w] latents, as A1111's latent upscalers call it.
Tensor upscale_latents(const Tensor& latents, int64_t out_h, int64_t out_w, bool bilinear);

}  // namespace diffuse::stages
