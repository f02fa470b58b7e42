// ControlNetModel configuration (diffusers models/controlnets/controlnet.py), read strictly from a
// diffusers config.json: the keys it shares with the UNet's encoder half go through
// UNetConfig::parse_encoder, the ControlNet's own keys are read here, and any other key (or a
// value we do not implement) is a ConfigError naming the file and key.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/unet/unet_config.h"

namespace diffuse {

struct ControlNetConfig {
  /// conv_in, time/added embeddings, down blocks and mid block, as in the UNet it was made from
  /// (up_blocks empty). diffusers' ControlNet always has time_embedding_dim 4 *
  /// block_out_channels[0] and 3x3 conv_in.
  UNetConfig unet;
  int conditioning_channels = 3;
  /// The conditioning embedding: conv_in to [0], then per step a conv and a stride-2 conv to the
  /// next width, so the control image is 2^(size - 1) times the latent size (8 for 4 entries).
  std::vector<int> conditioning_embedding_out_channels{16, 32, 96, 256};
  bool bgr = false;  // controlnet_conditioning_channel_order "bgr": channels flipped first
  /// Residuals averaged over h, w ([B, C, 1, 1]); guess mode's scale ramp is then not applied.
  bool global_pool_conditions = false;

  /// How many times larger than the latent the control image is.
  int downscale() const { return 1 << (conditioning_embedding_out_channels.size() - 1); }

  static ControlNetConfig load(const std::string& path);
  static ControlNetConfig parse(const nlohmann::json& j, const std::string& source);
};

}  // namespace diffuse
