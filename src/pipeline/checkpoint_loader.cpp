#include "pipeline/checkpoint_loader.h"

#include <filesystem>

#include "diffuse/error.hpp"
#include "io/pickle/torch_checkpoint.h"
#include "io/pickle/zip_archive.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace diffuse {

bool is_single_file_checkpoint(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

namespace {

// No tensor of an SD 1.x/2.x/XL model is near this (the largest, SDXL's 49408 x 1280 token
// embedding, has 63 M elements): a larger declared tensor is a corrupt or hostile file, refused
// before its storage is read or inflated.
constexpr int64_t kMaxCheckpointTensorElements = int64_t{1} << 28;

void check_tensor_sizes(const std::string& path,
                        const std::map<std::string, TorchTensorInfo>& tensors) {
  for (const auto& [name, info] : tensors)
    if (info.shape.numel() > kMaxCheckpointTensorElements)
      throw FileError(path + ": tensor '" + name + "' declares " +
                      std::to_string(info.shape.numel()) +
                      " elements, more than any Stable Diffusion weight (corrupt file?)");
}

}  // namespace

StateDict read_checkpoint_state_dict(const std::string& path) {
  const auto check = [&path](const std::map<std::string, TorchTensorInfo>& tensors) {
    check_tensor_sizes(path, tensors);
  };
  if (ZipArchive::looks_like_zip(path)) return read_torch_checkpoint(path, check);
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".bin")
    return read_torch_checkpoint(path, check);
  const SafetensorsFile f = SafetensorsFile::open(path);
  StateDict sd;
  for (const auto& k : f.keys()) sd.emplace(k, f.get(k));  // views keep the mapping alive
  return sd;
}

ConvertedCheckpoint convert_checkpoint(const StateDict& sd, const std::string& path,
                                       const std::string& config_dir) {
  ConvertedCheckpoint c;
  c.family = detect_checkpoint_family(sd, path);
  const fs::path root(config_dir);
  c.unet = convert_ldm_unet(sd, UNetConfig::load((root / "unet" / "config.json").string()), path);
  c.vae = convert_ldm_vae(sd, VaeConfig::load((root / "vae" / "config.json").string()), path);
  if (c.family == "sdxl") {
    c.text_encoder = convert_clip_text_encoder(sd, kSdxlClipPrefix, path);
    c.text_encoder_2 = convert_open_clip_text_encoder(sd, kSdxlOpenClipPrefix, true, path);
  } else if (c.family == "sdxl-refiner") {
    c.text_encoder_2 = convert_open_clip_text_encoder(sd, kSdxlRefinerOpenClipPrefix, true, path);
  } else {
    c.text_encoder = convert_ldm_text_encoder(sd, c.family, path);
  }
  return c;
}

std::string checkpoint_config_dir(const std::string& family, const std::string& path,
                                  const LoadOptions& options) {
  if (!options.config_dir.empty()) return options.config_dir;
  if (options.assets_dir.empty())
    throw ConfigError(path +
                      ": a single-file checkpoint needs a config folder (LoadOptions::config_dir, "
                      "CLI --config-dir) or diffuse's assets (LoadOptions::assets_dir)");
  const char* bundled = family == "sd2"            ? "sd21-768v"
                        : family == "sdxl"         ? "sdxl-base"
                        : family == "sdxl-refiner" ? "sdxl-refiner"
                                                   : "sd15";
  const fs::path dir = fs::path(options.assets_dir) / "configs" / bundled;
  if (!fs::is_directory(dir)) throw FileError(dir.string() + ": bundled config folder not found");
  return dir.string();
}

namespace {

const char* family_title(const std::string& family) {
  return family == "sd2"            ? "SD 2.x"
         : family == "sdxl"         ? "SDXL"
         : family == "sdxl-refiner" ? "an SDXL refiner"
                                    : "SD 1.x";
}

}  // namespace

std::variant<StableDiffusionModel, StableDiffusionXLModel> load_checkpoint_model(
    const std::string& path, const LoadOptions& options) {
  if (options.synthetic_weights)
    throw ConfigError(path + ": synthetic weights need a model folder, not a checkpoint file");
  const StateDict sd = read_checkpoint_state_dict(path);
  const std::string family = detect_checkpoint_family(sd, path);
  const std::string config_dir = checkpoint_config_dir(family, path, options);
  const bool xl = family == "sdxl" || family == "sdxl-refiner";
  if (xl != is_stable_diffusion_xl_folder(config_dir))
    throw ConfigError(path + ": the checkpoint is " + family_title(family) +
                      " but the config folder " + config_dir + " is " +
                      (xl ? "not an SDXL pipeline" : "an SDXL pipeline"));
  const ConvertedCheckpoint c = convert_checkpoint(sd, path, config_dir);
  LoadOptions o = options;
  if (o.tokenizer_fallback_dir.empty() && !o.assets_dir.empty())
    o.tokenizer_fallback_dir = (fs::path(o.assets_dir) / "tokenizer").string();
  const std::string name = fs::path(path).stem().string();
  if (xl) {
    const ComponentWeights weights{family == "sdxl" ? &c.text_encoder : nullptr, &c.text_encoder_2,
                                   &c.unet, &c.vae};
    StableDiffusionXLModel m = load_stable_diffusion_xl_folder(config_dir, o, &weights);
    if (m.text_encoder_2_only != (family == "sdxl-refiner"))
      throw ConfigError(path + ": the checkpoint is " + family_title(family) +
                        " but the config folder " + config_dir + " describes " +
                        (m.text_encoder_2_only ? "a refiner" : "an SDXL base model"));
    m.base.name = name;
    return m;
  }
  const ComponentWeights weights{&c.text_encoder, nullptr, &c.unet, &c.vae};
  StableDiffusionModel m = load_stable_diffusion_folder(config_dir, o, &weights);
  if (m.family != c.family)
    throw ConfigError(path + ": the checkpoint is " + family_title(c.family) +
                      " but the config folder " + config_dir + " describes " +
                      family_title(m.family));
  m.name = name;
  return m;
}

}  // namespace diffuse
