#include "models/unet/unet_config.h"

#include <utility>

#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "io/json_config.h"

namespace diffuse {

namespace {

std::string str(int v) {
  return std::to_string(v);
}

void positive(const JsonConfig& c, const char* key, int v) {
  if (v <= 0) c.fail(key, "must be positive, got " + str(v));
}

std::vector<UNetConfig::DownBlock> down_block_types(JsonConfig& c, size_t n) {
  std::vector<std::string> names{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                 "CrossAttnDownBlock2D", "DownBlock2D"};
  if (c.has("down_block_types")) names = c.string_list("down_block_types");
  c.ignore({"down_block_types"});
  if (names.size() != n)
    c.fail("down_block_types", "has " + std::to_string(names.size()) + " entries but " +
                                   "block_out_channels has " + std::to_string(n));
  std::vector<UNetConfig::DownBlock> out;
  for (const auto& t : names) {
    if (t == "CrossAttnDownBlock2D")
      out.push_back(UNetConfig::DownBlock::kCrossAttn);
    else if (t == "DownBlock2D")
      out.push_back(UNetConfig::DownBlock::kPlain);
    else
      c.fail("down_block_types", "block \"" + t +
                                     "\" is not supported (supported: CrossAttnDownBlock2D, "
                                     "DownBlock2D)");
  }
  return out;
}

std::vector<UNetConfig::UpBlock> up_block_types(JsonConfig& c, size_t n) {
  std::vector<std::string> names{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                 "CrossAttnUpBlock2D"};
  if (c.has("up_block_types")) names = c.string_list("up_block_types");
  c.ignore({"up_block_types"});
  if (names.size() != n)
    c.fail("up_block_types", "has " + std::to_string(names.size()) + " entries but " +
                                 "block_out_channels has " + std::to_string(n));
  std::vector<UNetConfig::UpBlock> out;
  for (const auto& t : names) {
    if (t == "CrossAttnUpBlock2D")
      out.push_back(UNetConfig::UpBlock::kCrossAttn);
    else if (t == "UpBlock2D")
      out.push_back(UNetConfig::UpBlock::kPlain);
    else
      c.fail("up_block_types",
             "block \"" + t + "\" is not supported (supported: CrossAttnUpBlock2D, UpBlock2D)");
  }
  return out;
}

// The embedding keys: features we do not implement are accepted only at their defaults.
void parse_embeddings(JsonConfig& c, UNetConfig& u) {
  c.expect("class_embed_type", nullptr);
  c.expect("num_class_embeds", nullptr);  // non-null adds a class-embedding table
  u.text_time_embedding = c.has("addition_embed_type");
  if (u.text_time_embedding) {
    c.choice("addition_embed_type", "text_time", {"text_time"});
  } else {
    c.expect("addition_embed_type", nullptr);  // absent or null: no added embedding
  }
  u.addition_time_embed_dim = c.integer("addition_time_embed_dim", 0);
  u.projection_class_embeddings_input_dim = c.integer("projection_class_embeddings_input_dim", 0);
  c.expect("encoder_hid_dim", nullptr);
  c.expect("encoder_hid_dim_type", nullptr);
  // addition_embed_type_num_heads is used only by the "text" addition embedding, rejected above.
  c.ignore({"addition_embed_type_num_heads"});
}

// Heads, context width and transformer depth of one level that has attention.
void check_attention_level(const JsonConfig& c, const UNetConfig& u, size_t i) {
  const char* heads_key =
      c.has("num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
  positive(c, heads_key, u.num_heads[i]);
  positive(c, "cross_attention_dim", u.cross_attention_dim[i]);
  positive(c, "transformer_layers_per_block", u.transformer_layers_per_block[i]);
  if (u.block_out_channels[i] % u.num_heads[i])
    c.fail(heads_key, str(u.block_out_channels[i]) + " channels at level " + std::to_string(i) +
                          " are not divisible into " + str(u.num_heads[i]) + " heads");
}

// Consistency of the encoder half: shapes that would otherwise fail deep inside a kernel.
void check_encoder(const JsonConfig& c, const UNetConfig& u) {
  positive(c, "in_channels", u.in_channels);
  positive(c, "norm_num_groups", u.norm_num_groups);
  if (!(u.norm_eps > 0)) c.fail("norm_eps", "must be positive");
  if (u.downsample_padding < 0) c.fail("downsample_padding", "must not be negative");
  if (u.block_out_channels[0] % 2)
    c.fail("block_out_channels", "first entry must be even (sinusoidal timestep embedding)");
  if (u.text_time_embedding) {
    positive(c, "addition_time_embed_dim", u.addition_time_embed_dim);
    positive(c, "projection_class_embeddings_input_dim", u.projection_class_embeddings_input_dim);
  }
  const size_t n = u.levels();
  for (size_t i = 0; i < n; ++i) {
    const int ch = u.block_out_channels[i];
    positive(c, "block_out_channels", ch);
    positive(c, "layers_per_block", u.layers_per_block[i]);
    if (ch % u.norm_num_groups)
      c.fail("block_out_channels",
             str(ch) + " channels are not divisible by norm_num_groups " + str(u.norm_num_groups));
  }
  // Levels with attention on the way down: cross-attention down blocks and the mid block.
  for (size_t i = 0; i < n; ++i)
    if (u.down_blocks[i] == UNetConfig::DownBlock::kCrossAttn || i == n - 1)
      check_attention_level(c, u, i);
}

}  // namespace

UNetConfig UNetConfig::load(const std::string& path) {
  return parse(load_json_object(path), path);
}

UNetConfig UNetConfig::parse_encoder(JsonConfig& c, const nlohmann::json& j) {
  UNetConfig u;
  // JsonConfig reads null as "use the default", but for these two keys diffusers gives null a
  // meaning of its own (no mid block; no group norms), which we do not build.
  for (const char* key : {"mid_block_type", "norm_num_groups"}) {
    auto it = j.find(key);
    if (it != j.end() && it->is_null()) c.fail(key, "= null is not supported");
  }

  u.in_channels = c.integer("in_channels", 4);
  if (c.has("block_out_channels")) u.block_out_channels = c.required_int_list("block_out_channels");
  const size_t n = u.block_out_channels.size();
  u.down_blocks = down_block_types(c, n);
  c.choice("mid_block_type", "UNetMidBlock2DCrossAttn", {"UNetMidBlock2DCrossAttn"});

  u.layers_per_block = c.int_list("layers_per_block", n, 2);
  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (the historical
  // misnaming: SD 2.x's attention_head_dim [5, 10, 20, 20] are head counts of 64 channels each).
  const std::vector<int> head_dim_key = c.int_list("attention_head_dim", n, 8);
  u.num_heads =
      c.has("num_attention_heads") ? c.int_list("num_attention_heads", n, 8) : head_dim_key;
  c.ignore({"num_attention_heads"});
  u.cross_attention_dim = c.int_list("cross_attention_dim", n, 1280);
  u.transformer_layers_per_block = c.int_list("transformer_layers_per_block", n, 1);
  u.use_linear_projection = c.boolean("use_linear_projection", false);
  u.upcast_attention = c.boolean("upcast_attention", false);
  u.norm_num_groups = c.integer("norm_num_groups", 32);
  u.norm_eps = c.number("norm_eps", 1e-5);
  u.flip_sin_to_cos = c.boolean("flip_sin_to_cos", true);
  u.freq_shift = c.number("freq_shift", 0);
  u.time_embedding_dim = 4 * u.block_out_channels[0];
  u.downsample_padding = c.integer("downsample_padding", 1);
  u.mid_block_scale_factor = c.number("mid_block_scale_factor", 1.0);
  c.choice("act_fn", "silu", {"silu", "swish"});  // diffusers maps both to nn.SiLU
  c.choice("resnet_time_scale_shift", "default", {"default"});
  c.expect("only_cross_attention", false);
  parse_embeddings(c, u);
  check_encoder(c, u);
  return u;
}

UNetConfig UNetConfig::parse(const nlohmann::json& j, const std::string& source) {
  JsonConfig c(j, source);
  UNetConfig u = parse_encoder(c, j);
  const size_t n = u.levels();
  u.up_blocks = up_block_types(c, n);
  u.out_channels = c.integer("out_channels", 4);
  u.time_embedding_dim = c.integer("time_embedding_dim", u.time_embedding_dim);
  u.conv_in_kernel = c.integer("conv_in_kernel", 3);
  u.conv_out_kernel = c.integer("conv_out_kernel", 3);
  c.choice("time_embedding_type", "positional", {"positional"});
  c.choice("attention_type", "default", {"default"});

  // sample_size is an int or [height, width]; only informational here.
  if (auto it = j.find("sample_size"); it != j.end() && it->is_number_integer())
    u.sample_size = it->get<int>();
  c.ignore({"sample_size"});

  // Features we do not implement: accepted only at their defaults.
  c.expect("center_input_sample", false);
  c.expect("mid_block_only_cross_attention", false);
  c.expect("dual_cross_attention", false);
  c.expect("class_embeddings_concat", false);
  c.expect("time_embedding_act_fn", nullptr);
  c.expect("timestep_post_act", nullptr);
  c.expect("time_cond_proj_dim", nullptr);
  c.expect("cross_attention_norm", nullptr);
  c.expect("reverse_transformer_layers_per_block", nullptr);
  // Keys with no effect on the blocks we build: dropout (training only); resnet_skip_time_act
  // and resnet_out_scale_factor (diffusers passes them only to the Resnet*/SimpleCrossAttn block
  // families, not to CrossAttn/Down/Up blocks).
  c.ignore({"dropout", "resnet_skip_time_act", "resnet_out_scale_factor"});
  c.finish();

  positive(c, "out_channels", u.out_channels);
  positive(c, "time_embedding_dim", u.time_embedding_dim);
  const std::pair<const char*, int> kernels[] = {{"conv_in_kernel", u.conv_in_kernel},
                                                 {"conv_out_kernel", u.conv_out_kernel}};
  for (const auto& [key, k] : kernels)
    if (k <= 0 || k % 2 == 0) c.fail(key, "must be a positive odd kernel size, got " + str(k));
  // Up block i works at level n-1-i.
  for (size_t i = 0; i < n; ++i)
    if (u.up_blocks[i] == UpBlock::kCrossAttn) check_attention_level(c, u, n - 1 - i);
  return u;
}

}  // namespace diffuse
