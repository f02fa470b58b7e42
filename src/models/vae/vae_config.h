// AutoencoderKL configuration, read strictly from a diffusers config.json (see UNetConfig for the
// rules: unknown keys and unimplemented features are ConfigErrors naming the file and key).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace diffuse {

struct VaeConfig {
  int in_channels = 3;   // image channels
  int out_channels = 3;  // decoded image channels
  int latent_channels = 4;
  std::vector<int> block_out_channels{64};  // one per DownEncoderBlock2D / UpDecoderBlock2D
  int layers_per_block = 1;                 // encoder resnets per level (decoder: one more)
  int norm_num_groups = 32;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;
  /// Latents are scaled by this between the VAE and the UNet; decode()/encode() do not apply it.
  double scaling_factor = 0.18215;
  int sample_size = 0;  // informational (image size trained at); 0 if unknown

  size_t levels() const { return block_out_channels.size(); }
  /// Pixels per latent along each side: 2^(levels - 1), 8 for Stable Diffusion.
  int downsample_factor() const { return 1 << (levels() - 1); }

  /// Reads a VAE config.json file.
  static VaeConfig load(const std::string& path);
  /// Parses an already-loaded JSON object; `source` names it in errors.
  static VaeConfig parse(const nlohmann::json& j, const std::string& source);
};

}  // namespace diffuse
