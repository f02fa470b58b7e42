// inspect_model: what a model path holds, from its configs and tensor headers alone.
#include <filesystem>
#include <set>

#include "diffuse/diffuse.hpp"
#include "diffuse/error.hpp"
#include "io/json_config.h"
#include "io/package_manifest.h"
#include "pipeline/checkpoint_conversion.h"
#include "pipeline/checkpoint_loader.h"
#include "pipeline/model_folder.h"

namespace fs = std::filesystem;

namespace diffuse {

namespace {

void count_tensor(ComponentDescription& c, const Tensor& t) {
  c.parameters += t.numel();
  c.bytes += static_cast<int64_t>(t.nbytes());
  c.parameters_by_dtype[std::string(dtype_name(t.dtype()))] += t.numel();
}

int64_t file_size_of(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(size);
}

nlohmann::json read_json(const fs::path& path) {
  return parse_json(read_text_file(path.string()), path.string());
}

// The UNet's sample_size (latent pixels) times the VAE's downscale 2^(levels - 1).
int default_size(const fs::path& root) {
  const fs::path unet = root / "unet" / "config.json", vae = root / "vae" / "config.json";
  if (!fs::exists(unet) || !fs::exists(vae)) return 0;
  const int sample = read_json(unet).value("sample_size", 64);
  const nlohmann::json v = read_json(vae);
  const size_t levels = v.contains("block_out_channels") ? v["block_out_channels"].size() : 4;
  return sample << (levels > 0 ? levels - 1 : 0);
}

ComponentDescription inspect_component(const fs::path& dir, const std::string& name,
                                       const std::string& class_name, const std::string& variant,
                                       int64_t& file_bytes) {
  ComponentDescription c{name, class_name, "", 0, 0, {}};
  const WeightStore store = load_component_weights(dir.string(), variant);
  c.source = store.source();
  for (const auto& key : store.keys()) {
    const Tensor stored = store.raw(key);
    if (store.contains(key + ":palette")) {
      // A package's palettized matrix: packed indices, its table and its logical shape.
      const Tensor shape = store.raw(key + ":shape").contiguous();
      const Tensor palette = store.raw(key + ":palette");
      int64_t n = 1;
      for (int64_t i = 0; i < shape.numel(); ++i) n *= shape.data_as<int64_t>()[i];
      // [2^bits], or [groups, 2^bits] with a table per group of output channels.
      const int64_t entries = palette.ndim() == 2 ? palette.dim(1) : palette.numel();
      int bits = 0;
      while (bits < 9 && (int64_t{1} << bits) < entries) ++bits;
      c.parameters += n;
      c.bytes += static_cast<int64_t>(stored.nbytes() + palette.nbytes());
      c.parameters_by_dtype["palette" + std::to_string(bits)] += n;
      continue;
    }
    count_tensor(c, stored);
    if (store.contains(key + ":scales"))
      c.bytes += static_cast<int64_t>(store.raw(key + ":scales").nbytes());
  }
  for (const auto& p : store.paths()) file_bytes += file_size_of(p);
  return c;
}

// One component's folder (a VAE or ControlNet download): config.json names its class.
ModelDescription inspect_part(const std::string& path, const LoadOptions& options) {
  const nlohmann::json config = read_json(fs::path(path) / "config.json");
  ModelDescription m;
  m.path = path;
  m.kind = "component folder";
  // diffusers configs name their class; transformers configs list their architectures.
  std::string class_name = config.value("_class_name", "");
  const auto arch = config.find("architectures");
  if (class_name.empty() && arch != config.end() && arch->is_array() && !arch->empty() &&
      (*arch)[0].is_string())
    class_name = (*arch)[0].get<std::string>();
  const fs::path dir = fs::path(path).lexically_normal();
  const std::string name = (dir.filename().empty() ? dir.parent_path() : dir).filename().string();
  m.components.push_back(
      inspect_component(path, name, class_name, weight_variant(options), m.file_bytes));
  return m;
}

ModelDescription inspect_folder(const std::string& path, const LoadOptions& options) {
  const fs::path root(path);
  const fs::path index_path = root / "model_index.json";
  if (!fs::exists(index_path) && fs::exists(root / "config.json"))
    return inspect_part(path, options);
  if (!fs::exists(index_path))
    throw FileError(path +
                    ": not a model (no model_index.json; a diffusers folder or a "
                    ".safetensors/.ckpt file is expected)");
  const nlohmann::json index = read_json(index_path);
  ModelDescription m;
  m.path = path;
  m.kind = "diffusers folder";
  m.pipeline = index.value("_class_name", "");
  const std::string variant = weight_variant(options);
  // A diffuse package says which components it holds (convert --components may leave some out).
  const std::optional<PackageManifest> manifest = package_manifest_of(path);
  if (manifest)
    m.kind = "diffuse package (" + (manifest->precision.empty() ? "?" : manifest->precision) +
             (manifest->attention
                  ? ", " + std::string(attention_kernel_name(*manifest->attention)) + " attention"
                  : "") +
             ")";
  for (const auto& [name, value] : index.items()) {
    if (!value.is_array() || value.size() != 2 || !value[1].is_string()) continue;
    const fs::path dir = root / name;
    if (!fs::exists(dir / "config.json") || name == "safety_checker") continue;
    if (manifest && !manifest->component(name)) continue;
    m.components.push_back(
        inspect_component(dir, name, value[1].get<std::string>(), variant, m.file_bytes));
  }
  const fs::path scheduler = root / "scheduler" / "scheduler_config.json";
  m.prediction_type =
      fs::exists(scheduler) ? read_json(scheduler).value("prediction_type", "epsilon") : "";
  const fs::path unet = root / "unet" / "config.json";
  m.inpainting = fs::exists(unet) && read_json(unet).value("in_channels", 4) == 9;
  m.default_size = default_size(root);
  if (m.pipeline.rfind("StableDiffusionXL", 0) == 0) {
    m.family = "sdxl";
  } else {
    const fs::path te = root / "text_encoder" / "config.json";
    m.family = fs::exists(te) && read_json(te).value("hidden_act", "") == "gelu" ? "sd2" : "sd1";
  }
  return m;
}

// Single files: the original LDM key prefixes name the components.
struct CheckpointPart {
  const char* prefix;
  const char* name;
  const char* class_name;
};
const CheckpointPart kCheckpointParts[] = {
    {"model.diffusion_model.", "unet", "UNet2DConditionModel"},
    {"first_stage_model.", "vae", "AutoencoderKL"},
    {"cond_stage_model.", "text_encoder", "CLIPTextModel"},
    {"conditioner.embedders.0.", "text_encoder", "CLIPTextModel"},
    {"conditioner.embedders.1.", "text_encoder_2", "CLIPTextModelWithProjection"},
    // SDXL's refiner: its only (OpenCLIP) encoder at embedders.0; the last matching prefix wins.
    {"conditioner.embedders.0.model.", "text_encoder_2", "CLIPTextModelWithProjection"},
};

ModelDescription inspect_checkpoint(const std::string& path) {
  const StateDict sd = read_checkpoint_state_dict(path);
  ModelDescription m;
  m.path = path;
  m.kind = "single-file checkpoint";
  m.file_bytes = file_size_of(path);
  std::map<std::string, ComponentDescription> parts;
  for (const auto& [key, t] : sd) {
    const CheckpointPart* part = nullptr;
    for (const auto& p : kCheckpointParts)
      if (key.rfind(p.prefix, 0) == 0) part = &p;
    if (!part) {
      m.other_parameters += t.numel();
      continue;
    }
    auto [it, fresh] = parts.try_emplace(
        part->name, ComponentDescription{part->name, part->class_name, path, 0, 0, {}});
    count_tensor(it->second, t);
  }
  if (!parts.count("unet"))
    throw FileError(path + ": not a Stable Diffusion checkpoint (no model.diffusion_model.* keys)");
  for (const char* name : {"text_encoder", "text_encoder_2", "unet", "vae"})
    if (parts.count(name)) m.components.push_back(parts.at(name));
  const auto in = sd.find("model.diffusion_model.input_blocks.0.0.weight");
  m.inpainting = in != sd.end() && in->second.ndim() == 4 && in->second.dim(1) == 9;
  if (parts.count("text_encoder_2")) {
    m.family = "sdxl";
    m.pipeline = parts.count("text_encoder") ? "StableDiffusionXLPipeline"
                                             : "StableDiffusionXLImg2ImgPipeline";
    m.prediction_type = "epsilon";
    m.default_size = 1024;
    return m;
  }
  m.family = detect_checkpoint_family(sd, path);
  m.pipeline = m.inpainting ? "StableDiffusionInpaintPipeline" : "StableDiffusionPipeline";
  m.prediction_type = m.family == "sd2" ? "v_prediction (assumed: 768-v)" : "epsilon";
  m.default_size = m.family == "sd2" ? 768 : 512;
  return m;
}

}  // namespace

ModelDescription inspect_model(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return inspect_folder(path, options);
  if (!fs::exists(path, ec)) throw FileError(path + ": not found");
  return inspect_checkpoint(path);
}

}  // namespace diffuse
