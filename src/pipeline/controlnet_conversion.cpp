#include "pipeline/controlnet_conversion.h"

#include <filesystem>
#include <optional>

#include "diffuse/error.hpp"
#include "pipeline/checkpoint_loader.h"

namespace fs = std::filesystem;

namespace diffuse {

namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

// input_hint_block: convolutions at the even indices (SiLUs between them have no weights): the
// first is conv_in, the last conv_out, the ones between blocks.0, 1, ...
std::optional<std::string> hint_block_name(const std::string& rest, const ControlNetConfig& c) {
  const int last = 2 * (2 * static_cast<int>(c.conditioning_embedding_out_channels.size()) - 1);
  const auto split = split_index(rest);
  if (!split || split->first < 0 || split->first % 2 || split->first > last) return std::nullopt;
  const int i = split->first;
  const std::string module = i == 0      ? "conv_in"
                             : i == last ? "conv_out"
                                         : "blocks." + std::to_string(i / 2 - 1);
  return "controlnet_cond_embedding." + module + "." + split->second;
}

// zero_convs.<i>.0 -> controlnet_down_blocks.<i>
std::optional<std::string> zero_conv_name(const std::string& rest) {
  const auto split = split_index(rest);
  if (!split || split->first < 0 || !starts_with(split->second, "0.")) return std::nullopt;
  return "controlnet_down_blocks." + std::to_string(split->first) + "." + split->second.substr(2);
}

std::optional<std::string> controlnet_name(const std::string& k, const ControlNetConfig& c,
                                           const LdmEncoderNames& encoder) {
  if (auto name = encoder(k)) return name;
  if (starts_with(k, "middle_block_out.0.")) return "controlnet_mid_block." + k.substr(19);
  if (starts_with(k, "zero_convs.")) return zero_conv_name(k.substr(11));
  if (starts_with(k, "input_hint_block.")) return hint_block_name(k.substr(17), c);
  // SDXL's added embedding (label_emb in the original layout).
  if (starts_with(k, "label_emb.0.0.")) return "add_embedding.linear_1." + k.substr(14);
  if (starts_with(k, "label_emb.0.2.")) return "add_embedding.linear_2." + k.substr(14);
  return std::nullopt;
}

}  // namespace

WeightStore convert_ldm_controlnet(const StateDict& sd, const ControlNetConfig& config,
                                   const std::string& path) {
  // Files bundling the ControlNet with its SD model prefix it with control_model.; standalone
  // ones (e.g. thibaud/controlnet-sd21) have the bare keys.
  std::string prefix;
  for (const auto& [key, t] : sd)
    if (starts_with(key, "control_model.")) prefix = "control_model.";
  const LdmEncoderNames encoder(config.unet);
  WeightStore w;
  w.set_source(path);
  for (const auto& [key, t] : sd) {
    if (!starts_with(key, prefix)) continue;
    const std::optional<std::string> name =
        controlnet_name(key.substr(prefix.size()), config, encoder);
    if (!name)
      throw FileError(path + ": unrecognised ControlNet checkpoint key '" + key +
                      "' (not an original-layout ControlNet, or a variant diffuse does not "
                      "support)");
    w.add(*name, t);
  }
  if (w.size() == 0) throw FileError(path + ": no ControlNet weights (control_model.*)");
  return w;
}

ControlNetModel load_controlnet_checkpoint(const std::string& path, const ControlNetConfig& config,
                                           AttentionKernel attention) {
  const StateDict sd = read_checkpoint_state_dict(path);
  WeightStore w;
  if (sd.count("time_embedding.linear_1.weight")) {  // diffusers' layout already
    w.set_source(path);
    for (const auto& [key, t] : sd) w.add(key, t);
  } else {
    w = convert_ldm_controlnet(sd, config, path);
  }
  w.set_attention_kernel(attention);
  return ControlNetModel::from_weights(config, w);
}

ControlNetModel load_controlnet_checkpoint(const std::string& path,
                                           const std::string& config_path) {
  const fs::path p(config_path);
  std::error_code ec;
  const std::string file = fs::is_directory(p, ec) ? (p / "config.json").string() : config_path;
  return load_controlnet_checkpoint(path, ControlNetConfig::load(file));
}

}  // namespace diffuse
