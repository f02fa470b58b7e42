// UNet2DConditionModel configuration, read strictly from a diffusers config.json.
//
// Every key of diffusers' UNet2DConditionModel.__init__ is either honoured, accepted at the value
// that makes it a no-op, or rejected with a ConfigError naming the file and key: a config that asks
// for a feature we do not implement (class embeddings, image/text-image added embeddings, dual
// cross-attention, ...) fails loudly instead of producing a silently different model.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace diffuse {

class JsonConfig;

struct UNetConfig {
  enum class DownBlock { kCrossAttn, kPlain };  // CrossAttnDownBlock2D, DownBlock2D
  enum class UpBlock { kCrossAttn, kPlain };    // CrossAttnUpBlock2D, UpBlock2D

  int in_channels = 4;
  int out_channels = 4;
  std::vector<int> block_out_channels{320, 640, 1280, 1280};
  std::vector<DownBlock> down_blocks;
  std::vector<UpBlock> up_blocks;  // empty for a ControlNet (it has no up path)
  // Per level, in down-block order (up blocks use them reversed, as diffusers does).
  std::vector<int> layers_per_block;
  std::vector<int> num_heads;  // resolved: num_attention_heads, else attention_head_dim
  std::vector<int> cross_attention_dim;
  std::vector<int> transformer_layers_per_block;
  bool use_linear_projection = false;
  bool upcast_attention = false;  // a precision hint only; fp32 attention already is "upcast"
  int norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  int time_embedding_dim = 0;  // resolved: time_embedding_dim or 4 * block_out_channels[0]
  int downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  int conv_in_kernel = 3;
  int conv_out_kernel = 3;
  int sample_size = 0;  // informational (latent size the model was trained at); 0 if unknown
  // addition_embed_type "text_time" (SDXL): a second embedding added to the time embedding, from
  // the pooled text embedding concatenated with sinusoidal embeddings (addition_time_embed_dim
  // wide) of the micro-conditioning numbers; projection_class_embeddings_input_dim is the width of
  // that concatenation.
  bool text_time_embedding = false;
  int addition_time_embed_dim = 0;
  int projection_class_embeddings_input_dim = 0;

  size_t levels() const { return block_out_channels.size(); }
  /// Channels of one attention head at `level` (block_out_channels / heads).
  int head_dim(size_t level) const { return block_out_channels[level] / num_heads[level]; }

  /// Reads a UNet config.json file.
  static UNetConfig load(const std::string& path);
  /// Parses an already-loaded JSON object; `source` names it in errors.
  static UNetConfig parse(const nlohmann::json& j, const std::string& source);
  /// Reads and checks the keys of the encoder half (conv_in, time and added embeddings, down
  /// blocks, mid block): what diffusers' ControlNetModel shares with the UNet. The other keys of
  /// `j` are left to the caller, which finishes `c`; up_blocks stays empty, out_channels, the
  /// conv kernels and time_embedding_dim at their defaults.
  static UNetConfig parse_encoder(JsonConfig& c, const nlohmann::json& j);
};

}  // namespace diffuse
