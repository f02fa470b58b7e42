// The conditioning vector every resnet of a UNet (and of a ControlNet, which copies the UNet's
// encoder half) receives: diffusers' time_proj + time_embedding, plus for addition_embed_type
// "text_time" (SDXL) the add_embedding of the pooled text embedding and micro-conditioning.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "io/weight_store.h"
#include "models/unet/added_conditions.h"
#include "models/unet/unet_config.h"
#include "nn/layers.h"

namespace diffuse::unet {

/// time_embedding.linear_{1,2} and, with text_time, add_embedding.linear_{1,2}.
struct TimeEmbedding {
  nn::Linear linear_1, linear_2;
  nn::Linear add_linear_1, add_linear_2;  // text_time only

  static TimeEmbedding load(const WeightStore& w, const UNetConfig& c);
  /// silu(emb) [batch, time_embedding_dim] on `device`: every resnet applies silu to the
  /// embedding first, so it is done once here. `timesteps` holds one per batch element or one for
  /// the whole batch. `added` is required by (and only accepted with) text_time. `model` names
  /// the caller in ShapeErrors ("UNet", "ControlNet").
  Tensor operator()(const UNetConfig& c, const std::vector<double>& timesteps, int64_t batch,
                    Device device, const UNetAddedConditions* added, const char* model) const;
};

}  // namespace diffuse::unet
