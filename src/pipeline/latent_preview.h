// A cheap RGB estimate of SD latents for progress previews: a fixed 4->3 linear map fitted to the
// SD 1.x/2.x VAE (the "approx cheap" preview A1111 and ComfyUI use), at 1/8 resolution.
#pragma once

#include "core/tensor.h"
#include "diffuse/diffuse.hpp"

namespace diffuse {

/// Preview of latents[index] ([B,4,h,w]).
Image latent_preview(const Tensor& latents, int64_t index);

}  // namespace diffuse
