#include "models/controlnet/controlnet_config.h"

#include "io/json_config.h"

namespace diffuse {

ControlNetConfig ControlNetConfig::load(const std::string& path) {
  return parse(load_json_object(path), path);
}

ControlNetConfig ControlNetConfig::parse(const nlohmann::json& j, const std::string& source) {
  JsonConfig c(j, source);
  ControlNetConfig n;
  n.unet = UNetConfig::parse_encoder(c, j);
  n.conditioning_channels = c.integer("conditioning_channels", 3);
  if (c.has("conditioning_embedding_out_channels"))
    n.conditioning_embedding_out_channels =
        c.required_int_list("conditioning_embedding_out_channels");
  n.bgr = c.choice("controlnet_conditioning_channel_order", "rgb", {"rgb", "bgr"}) == "bgr";
  n.global_pool_conditions = c.boolean("global_pool_conditions", false);
  c.finish();

  if (n.conditioning_channels <= 0)
    c.fail("conditioning_channels",
           "must be positive, got " + std::to_string(n.conditioning_channels));
  for (int ch : n.conditioning_embedding_out_channels)
    if (ch <= 0) c.fail("conditioning_embedding_out_channels", "entries must be positive");
  // A shift past 2^30 would overflow downscale(); no ControlNet comes near it.
  if (n.conditioning_embedding_out_channels.size() > 16)
    c.fail("conditioning_embedding_out_channels", "has more than 16 entries");
  return n;
}

}  // namespace diffuse
