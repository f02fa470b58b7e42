// The inputs of the UNet's (and ControlNet's) added embedding.
#pragma once

#include "core/tensor.h"

namespace diffuse {

/// diffusers' added_cond_kwargs for addition_embed_type "text_time" (SDXL).
struct UNetAddedConditions {
  Tensor text_embeds;  // [B, D]: text_encoder_2's projected pooled output
  Tensor time_ids;     // [B, N] F32: original size, crop top-left, target size (N = 6 for SDXL)
};

}  // namespace diffuse
