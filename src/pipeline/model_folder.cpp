#include "pipeline/model_folder.h"

#include <cctype>
#include <filesystem>

#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "io/json_config.h"
#include "io/package_manifest.h"
#include "pipeline/synthetic_weights.h"
#include "pipeline/vae_loader.h"

namespace fs = std::filesystem;

namespace diffuse {

int StableDiffusionModel::vae_scale_factor() const {
  return 1 << (static_cast<int>(vae.config().block_out_channels.size()) - 1);
}

int StableDiffusionModel::default_size() const {
  // sample_size is the latent size the UNet was trained at (64 for SD 1.5 = 512 px).
  const int latent = unet.config().sample_size > 0 ? unet.config().sample_size : 64;
  return latent * vae_scale_factor();
}

namespace {

void require_component(const nlohmann::json& index, const std::string& path, const char* name,
                       const char* library, std::initializer_list<const char*> classes) {
  auto it = index.find(name);
  if (it == index.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_string())
    throw ConfigError(path + ": component '" + std::string(name) + "' missing or malformed");
  const std::string cls = (*it)[1].get<std::string>();
  for (const char* c : classes)
    if (cls == c) return;
  throw ConfigError(path + ": component '" + std::string(name) + "' has class " + cls + " (" +
                    library + "), which diffuse does not support");
}

/// `dir`/model_index.json, parsed; FileError when the folder or the file is missing.
nlohmann::json read_model_index(const std::string& dir, std::string& index_path) {
  if (!fs::is_directory(dir)) throw FileError(dir + ": model folder not found");
  index_path = (fs::path(dir) / "model_index.json").string();
  if (!fs::exists(index_path))
    throw FileError(index_path + ": missing (expected a diffusers model folder)");
  return parse_json(read_text_file(index_path), index_path);
}

std::string folder_name(const fs::path& root) {
  return root.filename().empty() ? root.parent_path().filename().string()
                                 : root.filename().string();
}

nlohmann::json load_scheduler_config(const fs::path& root) {
  const std::string sched_path = (root / "scheduler" / "scheduler_config.json").string();
  if (!fs::exists(sched_path)) throw FileError(sched_path + ": missing");
  return parse_json(read_text_file(sched_path), sched_path);
}

// A tokenizer folder without a vocabulary (a bundled config's) takes `fallback`'s vocabulary and
// keeps its own configuration (SD 2.x's and SDXL's tokenizer_2 pad with "!").
ClipTokenizer load_tokenizer(const fs::path& dir, const std::string& fallback) {
  if (!fallback.empty() && !fs::exists(dir / "vocab.json"))
    return ClipTokenizer::load(fallback, dir.string());
  return ClipTokenizer::load(dir.string());
}

// Where components read their weights from: LoadOptions, checked once.
struct WeightSource {
  bool synthetic = false;
  WeightPrecision precision = WeightPrecision::F32;
  std::string variant;
  std::string vae;  // LoadOptions::vae
  bool low_memory = false;
  AttentionKernel attention = AttentionKernel::Sliced;
};

WeightSource weight_source(const LoadOptions& options, const fs::path& root) {
  return {options.synthetic_weights, weight_precision(options),
          weight_variant(options),   options.vae,
          options.low_memory,        attention_kernel(options, root)};
}

// A component's weights: the given ones (a converted checkpoint), rule weights, or the weight
// files in its folder, holding layer matrices at the source's precision. The text encoder and
// UNet keep theirs (LoRAs patch copies of them).
WeightStore component_store(const fs::path& dir, const WeightSource& source, const WeightStore* w,
                            const std::string& rule_prefix = {}) {
  WeightStore store = w                  ? *w
                      : source.synthetic ? synthetic_weight_store(rule_prefix)
                                         : load_component_weights(dir.string(), source.variant);
  store.set_precision(source.precision);
  store.set_streaming(source.low_memory);
  store.set_attention_kernel(source.attention);
  return store;
}
std::shared_ptr<const WeightStore> component_weights(const fs::path& dir,
                                                     const WeightSource& source,
                                                     const WeightStore* w,
                                                     const std::string& rule_prefix = {}) {
  return std::make_shared<const WeightStore>(component_store(dir, source, w, rule_prefix));
}
// The rule keys drop "text_model."; text_projection sits outside it and keeps its name.
const char* const kTextEncoderRulePrefix = "text_model.";

ClipTextModel load_text_encoder(const fs::path& dir, const WeightStore& w,
                                bool with_projection = false) {
  const ClipTextConfig config = ClipTextConfig::load((dir / "config.json").string());
  return ClipTextModel::from_weights(config, w, with_projection);
}
UNet2DConditionModel load_unet(const fs::path& dir, const WeightStore& w) {
  return UNet2DConditionModel::from_weights(UNetConfig::load((dir / "config.json").string()), w);
}
// The model's VAE, or LoadOptions::vae's in its place (with its own config when it has one).
AutoencoderKL load_vae(const fs::path& dir, const WeightSource& source, const WeightStore* w) {
  VaeConfig config = VaeConfig::load((dir / "config.json").string());
  if (source.vae.empty())
    return AutoencoderKL::from_weights(std::move(config), component_store(dir, source, w));
  VaeReplacement replacement = read_vae_replacement(source.vae, config, source.variant);
  if (!replacement.config_path.empty()) config = VaeConfig::load(replacement.config_path);
  WeightSource own = source;
  own.synthetic = false;
  return AutoencoderKL::from_weights(std::move(config),
                                     component_store(dir, own, &replacement.weights));
}

/// The UNet's cross-attention width must be the text conditioning's width.
void check_context_width(const UNetConfig& unet, int width, const std::string& unet_path,
                         const std::string& what) {
  for (int d : unet.cross_attention_dim)
    if (d != width)
      throw ConfigError(unet_path + ": cross_attention_dim " + std::to_string(d) +
                        " does not match " + what + " " + std::to_string(width));
}

void check_latent_channels(const StableDiffusionModel& m, const fs::path& root) {
  // Inpainting UNets take the latents, the mask and the masked image's latents: 2 x latent + 1.
  const int64_t latent = m.vae.config().latent_channels, in = m.unet.config().in_channels;
  if (in != latent && in != 2 * latent + 1)
    throw ConfigError((root / "unet" / "config.json").string() + ": in_channels " +
                      std::to_string(in) + " does not fit the VAE's latent_channels " +
                      std::to_string(latent) + " (expected " + std::to_string(latent) + ", or " +
                      std::to_string(2 * latent + 1) + " for inpainting)");
  if (m.unet.config().out_channels != latent)
    throw ConfigError((root / "unet" / "config.json").string() + ": out_channels " +
                      std::to_string(m.unet.config().out_channels) +
                      " differs from the VAE's latent_channels " + std::to_string(latent));
}

}  // namespace

std::string weight_variant(const LoadOptions& options) {
  for (char c : options.variant)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
      throw ConfigError("variant: '" + options.variant +
                        "' is not a variant name (letters, digits, '_' and '-', e.g. fp16)");
  return options.variant;
}

AttentionKernel attention_kernel_option(const std::string& name) {
  AttentionKernel k{};
  if (!parse_attention_kernel(name, &k))
    throw ConfigError("attention: unknown '" + name + "' (choose " + attention_kernel_choices() +
                      ")");
  return k;
}

AttentionKernel attention_kernel(const LoadOptions& options, const std::string& dir) {
  if (!options.attention.empty()) return attention_kernel_option(options.attention);
  // A diffuse package records the kernel it was converted for.
  const std::optional<PackageManifest> m = package_manifest_of(dir);
  return m && m->attention ? *m->attention : AttentionKernel::Sliced;
}

WeightPrecision weight_precision(const LoadOptions& options) {
  WeightPrecision p{};
  if (!parse_weight_precision(options.precision, &p))
    throw ConfigError("precision: unknown '" + options.precision + "' (choose " +
                      weight_precision_choices() + ")");
  return p;
}

StableDiffusionModel load_stable_diffusion_folder(const std::string& dir,
                                                  const LoadOptions& options,
                                                  const ComponentWeights* weights) {
  std::string index_path;
  const nlohmann::json index = read_model_index(dir, index_path);
  const std::string cls = index.value("_class_name", "");
  if (cls.rfind("StableDiffusionXL", 0) == 0)
    throw ConfigError(index_path + ": " + cls +
                      " folders load as SDXL pipelines (single-file SDXL checkpoints are not "
                      "supported yet)");
  // One pipeline runs all three: what it does depends on the options and the UNet's channels.
  if (cls != "StableDiffusionPipeline" && cls != "StableDiffusionImg2ImgPipeline" &&
      cls != "StableDiffusionInpaintPipeline")
    throw ConfigError(index_path + ": _class_name \"" + cls +
                      "\" is not supported (supported: StableDiffusionPipeline, "
                      "StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, "
                      "StableDiffusionXLPipeline)");
  require_component(index, index_path, "text_encoder", "transformers", {"CLIPTextModel"});
  require_component(index, index_path, "tokenizer", "transformers",
                    {"CLIPTokenizer", "CLIPTokenizerFast"});
  require_component(index, index_path, "unet", "diffusers", {"UNet2DConditionModel"});
  require_component(index, index_path, "vae", "diffusers", {"AutoencoderKL"});

  const fs::path root(dir);
  const WeightSource source = weight_source(options, root);
  auto text_encoder_weights =
      component_weights(root / "text_encoder", source, weights ? weights->text_encoder : nullptr,
                        kTextEncoderRulePrefix);
  auto unet_weights = component_weights(root / "unet", source, weights ? weights->unet : nullptr);
  StableDiffusionModel m{
      folder_name(root),
      "",
      load_tokenizer(root / "tokenizer", options.tokenizer_fallback_dir),
      load_text_encoder(root / "text_encoder", *text_encoder_weights),
      load_unet(root / "unet", *unet_weights),
      load_vae(root / "vae", source, weights ? weights->vae : nullptr),
      load_scheduler_config(root),
      std::move(unet_weights),
      std::move(text_encoder_weights),
  };
  check_context_width(m.unet.config(), m.text_encoder.config().hidden_size,
                      (root / "unet" / "config.json").string(), "the text encoder's hidden_size");
  check_latent_channels(m, root);
  m.family = m.text_encoder.config().hidden_act == "gelu" ? "sd2" : "sd1";
  m.attention = source.attention;
  return m;
}

bool is_stable_diffusion_xl_folder(const std::string& dir) {
  const fs::path index_path = fs::path(dir) / "model_index.json";
  if (!fs::is_regular_file(index_path)) return false;
  const nlohmann::json index = parse_json(read_text_file(index_path.string()), index_path.string());
  if (!index.is_object()) return false;
  const std::string cls = index.value("_class_name", "");
  return cls == "StableDiffusionXLPipeline" || cls == "StableDiffusionXLImg2ImgPipeline";
}

namespace {

/// Whether model_index.json lists `name`: diffusers writes [null, null] for a component a pipeline
/// was saved without (SDXL's refiner has no first tokenizer and text encoder).
bool lists_component(const nlohmann::json& index, const char* name) {
  const auto it = index.find(name);
  return it != index.end() &&
         !(it->is_array() && it->size() == 2 && (*it)[0].is_null() && (*it)[1].is_null());
}

/// A boolean pipeline option of model_index.json (`fallback` when absent).
bool index_flag(const nlohmann::json& index, const std::string& index_path, const char* key,
                bool fallback) {
  const auto it = index.find(key);
  if (it == index.end()) return fallback;
  if (!it->is_boolean()) throw ConfigError(index_path + ": " + key + " must be true or false");
  return it->get<bool>();
}

// The checks that need only the configs, done before any weight is read: the UNet's context is
// the text encoders' hidden states side by side, and its added embedding takes text_encoder_2's
// projection plus the time ids (diffusers' _get_add_time_ids: original size, crop and target size,
// or with requires_aesthetics_score original size, crop and aesthetic score), each
// addition_time_embed_dim wide.
void check_xl_configs(const fs::path& root, bool first_encoder, bool aesthetics) {
  const ClipTextConfig te2 =
      ClipTextConfig::load((root / "text_encoder_2" / "config.json").string());
  int context = te2.hidden_size;
  if (first_encoder)
    context += ClipTextConfig::load((root / "text_encoder" / "config.json").string()).hidden_size;
  const std::string unet_path = (root / "unet" / "config.json").string();
  const UNetConfig unet = UNetConfig::load(unet_path);
  if (!unet.text_time_embedding)
    throw ConfigError(unet_path + ": addition_embed_type must be \"text_time\" for SDXL");
  check_context_width(unet, context, unet_path,
                      first_encoder ? "text_encoder + text_encoder_2 hidden sizes"
                                    : "text_encoder_2's hidden size");
  const int time_ids = aesthetics ? kRefinerTimeIds : kBaseTimeIds;
  const int expected = te2.projection_dim + time_ids * unet.addition_time_embed_dim;
  if (unet.projection_class_embeddings_input_dim != expected)
    throw ConfigError(
        unet_path + ": projection_class_embeddings_input_dim " +
        std::to_string(unet.projection_class_embeddings_input_dim) +
        " does not match text_encoder_2's projection_dim " + std::to_string(te2.projection_dim) +
        " + " + std::to_string(time_ids) + " time ids x addition_time_embed_dim " +
        std::to_string(unet.addition_time_embed_dim) + " = " + std::to_string(expected) +
        " (model_index.json's requires_aesthetics_score is " +
        (aesthetics ? "true: 5" : "false: 6") + " time ids)");
}

}  // namespace

StableDiffusionXLModel load_stable_diffusion_xl_folder(const std::string& dir,
                                                       const LoadOptions& options,
                                                       const ComponentWeights* weights) {
  std::string index_path;
  const nlohmann::json index = read_model_index(dir, index_path);
  const std::string cls = index.value("_class_name", "");
  if (cls != "StableDiffusionXLPipeline" && cls != "StableDiffusionXLImg2ImgPipeline")
    throw ConfigError(index_path + ": _class_name \"" + cls +
                      "\" is not supported as SDXL (supported: StableDiffusionXLPipeline, "
                      "StableDiffusionXLImg2ImgPipeline)");
  // SDXL's refiner has text_encoder_2 only.
  const bool first_encoder =
      lists_component(index, "text_encoder") || lists_component(index, "tokenizer");
  if (first_encoder) {
    require_component(index, index_path, "text_encoder", "transformers", {"CLIPTextModel"});
    require_component(index, index_path, "tokenizer", "transformers",
                      {"CLIPTokenizer", "CLIPTokenizerFast"});
  }
  require_component(index, index_path, "text_encoder_2", "transformers",
                    {"CLIPTextModelWithProjection"});
  require_component(index, index_path, "tokenizer_2", "transformers",
                    {"CLIPTokenizer", "CLIPTokenizerFast"});
  require_component(index, index_path, "unet", "diffusers", {"UNet2DConditionModel"});
  require_component(index, index_path, "vae", "diffusers", {"AutoencoderKL"});
  const bool zeros = index_flag(index, index_path, "force_zeros_for_empty_prompt", true);
  const bool aesthetics = index_flag(index, index_path, "requires_aesthetics_score", false);

  const fs::path root(dir);
  std::vector<std::string> folders = {"text_encoder_2", "unet", "vae"};
  if (first_encoder) folders.insert(folders.begin(), "text_encoder");
  for (const std::string& component : folders)
    if (!fs::is_directory(root / component))
      throw FileError((root / component).string() + ": missing (model_index.json lists '" +
                      component + "')");
  check_xl_configs(root, first_encoder, aesthetics);

  const WeightSource source = weight_source(options, root);
  auto text_encoder_2_weights =
      component_weights(root / "text_encoder_2", source,
                        weights ? weights->text_encoder_2 : nullptr, kTextEncoderRulePrefix);
  ClipTokenizer tokenizer_2 = load_tokenizer(root / "tokenizer_2", options.tokenizer_fallback_dir);
  ClipTextModel text_encoder_2 =
      load_text_encoder(root / "text_encoder_2", *text_encoder_2_weights, /*with_projection=*/true);
  // Without a first encoder, text_encoder_2 stands in the base model's place (the views share
  // their weights) and encodes alone.
  auto text_encoder_weights =
      first_encoder
          ? component_weights(root / "text_encoder", source,
                              weights ? weights->text_encoder : nullptr, kTextEncoderRulePrefix)
          : text_encoder_2_weights;
  auto unet_weights = component_weights(root / "unet", source, weights ? weights->unet : nullptr);
  StableDiffusionXLModel m{
      StableDiffusionModel{
          folder_name(root),
          "sdxl",
          first_encoder ? load_tokenizer(root / "tokenizer", options.tokenizer_fallback_dir)
                        : tokenizer_2,
          first_encoder ? load_text_encoder(root / "text_encoder", *text_encoder_weights)
                        : text_encoder_2,
          load_unet(root / "unet", *unet_weights),
          load_vae(root / "vae", source, weights ? weights->vae : nullptr),
          load_scheduler_config(root),
          std::move(unet_weights),
          std::move(text_encoder_weights),
      },
      std::move(tokenizer_2),
      std::move(text_encoder_2),
      zeros,
      std::move(text_encoder_2_weights),
      aesthetics,
      !first_encoder,
  };
  m.base.attention = source.attention;
  check_latent_channels(m.base, root);
  return m;
}

}  // namespace diffuse
