#include "models/vae/vae_config.h"

#include <utility>

#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "io/json_config.h"

namespace diffuse {

VaeConfig VaeConfig::load(const std::string& path) {
  return parse(load_json_object(path), path);
}

VaeConfig VaeConfig::parse(const nlohmann::json& j, const std::string& source) {
  JsonConfig c(j, source);
  VaeConfig v;
  // JsonConfig reads null as "the default"; diffusers would fail on a null group count.
  if (auto it = j.find("norm_num_groups"); it != j.end() && it->is_null())
    c.fail("norm_num_groups", "= null is not supported");

  v.in_channels = c.integer("in_channels", 3);
  v.out_channels = c.integer("out_channels", 3);
  v.latent_channels = c.integer("latent_channels", 4);
  if (c.has("block_out_channels")) v.block_out_channels = c.required_int_list("block_out_channels");
  v.layers_per_block = c.integer("layers_per_block", 1);
  v.norm_num_groups = c.integer("norm_num_groups", 32);
  v.use_quant_conv = c.boolean("use_quant_conv", true);
  v.use_post_quant_conv = c.boolean("use_post_quant_conv", true);
  v.mid_block_add_attention = c.boolean("mid_block_add_attention", true);
  v.scaling_factor = c.number("scaling_factor", 0.18215);
  c.choice("act_fn", "silu", {"silu", "swish"});  // diffusers maps both to nn.SiLU

  const size_t n = v.block_out_channels.size();
  const std::pair<const char*, const char*> block_lists[] = {
      {"down_block_types", "DownEncoderBlock2D"}, {"up_block_types", "UpDecoderBlock2D"}};
  for (const auto& [key, only] : block_lists) {
    const std::vector<std::string> types =
        c.has(key) ? c.string_list(key) : std::vector<std::string>(1, only);
    c.ignore({key});
    if (types.size() != n)
      c.fail(key, "has " + std::to_string(types.size()) + " entries but block_out_channels has " +
                      std::to_string(n));
    for (const auto& t : types)
      if (t != only)
        c.fail(key, "block \"" + t + "\" is not supported (supported: " + std::string(only) + ")");
  }

  if (auto it = j.find("sample_size"); it != j.end() && it->is_number_integer())
    v.sample_size = it->get<int>();
  else if (it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_number_integer())
    v.sample_size = (*it)[0].get<int>();  // [h, w]: diffusers tiles by the first
  c.ignore({"sample_size"});
  // force_upcast only says fp16 decoding overflows; we decode in fp32.
  c.ignore({"force_upcast"});
  // Latent normalisations other than scaling_factor (SD3/Flux shift, SDXL-style per-channel
  // statistics) change how latents are used; not implemented yet.
  c.expect("shift_factor", nullptr);
  c.expect("latents_mean", nullptr);
  c.expect("latents_std", nullptr);
  c.finish();

  auto positive = [&](const char* key, int val) {
    if (val <= 0) c.fail(key, "must be positive, got " + std::to_string(val));
  };
  positive("in_channels", v.in_channels);
  positive("out_channels", v.out_channels);
  positive("latent_channels", v.latent_channels);
  positive("layers_per_block", v.layers_per_block);
  positive("norm_num_groups", v.norm_num_groups);
  if (!(v.scaling_factor > 0)) c.fail("scaling_factor", "must be positive");
  if (n > 16) c.fail("block_out_channels", "has too many levels");
  for (int ch : v.block_out_channels) {
    positive("block_out_channels", ch);
    if (ch % v.norm_num_groups)
      c.fail("block_out_channels", std::to_string(ch) +
                                       " channels are not divisible by norm_num_groups " +
                                       std::to_string(v.norm_num_groups));
  }
  return v;
}

}  // namespace diffuse
