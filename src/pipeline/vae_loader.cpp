#include "pipeline/vae_loader.h"

#include <filesystem>

#include "diffuse/error.hpp"
#include "pipeline/checkpoint_conversion.h"
#include "pipeline/checkpoint_loader.h"

namespace fs = std::filesystem;

namespace diffuse {

namespace {

bool has_prefix(const StateDict& sd, const std::string& prefix) {
  const auto it = sd.lower_bound(prefix);
  return it != sd.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

/// A single VAE file's tensors as diffusers AutoencoderKL keys. Standalone LDM VAE files (the
/// ft-EMA/ft-MSE releases) hold the autoencoder's keys without the checkpoint's
/// "first_stage_model." prefix, plus EMA bookkeeping that A1111 drops as well.
WeightStore vae_file_weights(const std::string& path, const VaeConfig& config) {
  const StateDict sd = read_checkpoint_state_dict(path);
  if (has_prefix(sd, "decoder.mid_block.")) {  // already diffusers' layout
    WeightStore w;
    w.set_source(path);
    for (const auto& [key, t] : sd) w.add(key, t);
    return w;
  }
  if (has_prefix(sd, "first_stage_model.")) return convert_ldm_vae(sd, config, path);
  if (!has_prefix(sd, "decoder.") && !has_prefix(sd, "encoder."))
    throw FileError(path + ": not a VAE (no encoder.* / decoder.* / first_stage_model.* keys)");
  StateDict prefixed;
  for (const auto& [key, t] : sd)
    if (key.rfind("model_ema.", 0) != 0) prefixed.emplace("first_stage_model." + key, t);
  return convert_ldm_vae(prefixed, config, path);
}

}  // namespace

VaeReplacement read_vae_replacement(const std::string& path, const VaeConfig& model_config,
                                    const std::string& variant) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return {"", vae_file_weights(path, model_config)};
  if (!fs::is_directory(path, ec))
    throw FileError(path + ": VAE not found (--vae takes a VAE folder, a model folder or a file)");
  fs::path dir(path);
  if (!fs::exists(dir / "config.json") && fs::exists(dir / "vae" / "config.json")) dir /= "vae";
  if (!fs::exists(dir / "config.json"))
    throw FileError(path + ": no config.json (a VAE folder holds config.json and its weights)");
  return {(dir / "config.json").string(), load_component_weights(dir.string(), variant)};
}

}  // namespace diffuse
