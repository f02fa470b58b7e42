#include "pipeline/stable_diffusion_pipeline.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "backend/backend.h"
#include "backend/op_costs.h"
#include "core/allocator.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "io/image_resize.h"
#include "pipeline/a1111_prompt_encoding.h"
#include "pipeline/checkpoint_loader.h"
#include "pipeline/controlnet_conversion.h"
#include "pipeline/hires_fix.h"
#include "pipeline/inpainting.h"
#include "pipeline/latent_preview.h"
#include "pipeline/mask_crop.h"
#include "pipeline/masked_content.h"
#include "pipeline/stable_diffusion_xl_pipeline.h"
#include "pipeline/stages.h"
#include "pipeline/textual_inversion.h"
#include "random/random_source.h"
#include "tokenizer/a1111_prompt.h"

namespace diffuse {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "auto" VAE tiling decodes a batch one image at a time, then in tiles, beyond this much memory
// (LoadOptions::low_memory: in tiles of kLowMemoryTilePixels at any size).
constexpr size_t kDecodeBudgetBytes = size_t{4} << 30;
constexpr size_t kLowMemoryDecodeBudgetBytes = size_t{64} << 20;
constexpr int kLowMemoryTilePixels = 256;

stages::DecodePlan decode_plan(const GenerateOptions& o, const StableDiffusionModel& model,
                               const Tensor& latents, bool low_memory) {
  const int tile = low_memory && o.vae_tile_size == 0 ? kLowMemoryTilePixels : o.vae_tile_size;
  return stages::plan_decode(model.vae, o.vae_tiling, tile, latents.shape(),
                             low_memory ? kLowMemoryDecodeBudgetBytes : kDecodeBudgetBytes);
}

/// A float as a user wrote it ("0.05", not "0.050000").
std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Options above these are typos, not requests: they would take hours or exhaust memory.
constexpr int kMaxSide = 4096;
constexpr int kMaxSteps = 1000;
constexpr int kMaxImages = 64;

/// ConfigError naming `what` unless `fraction` is in (0, 1).
void check_fraction(float fraction, const std::string& what) {
  if (!(fraction > 0.f && fraction < 1.f))
    throw ConfigError(what + " must be between 0 and 1 (exclusive), got " + fmt(fraction));
}

/// ConfigError naming `what` unless `im` has a size and width x height x 3 values.
void check_pixels(const Image& im, const std::string& what) {
  if (im.width <= 0 || im.height <= 0 || im.rgb.size() != size_t(im.width) * size_t(im.height) * 3)
    throw ConfigError(what + ": empty or inconsistent pixel buffer");
}

}  // namespace

StableDiffusionPipeline::StableDiffusionPipeline(StableDiffusionModel model, double load_seconds,
                                                 Runtime runtime)
    : model_(std::move(model)),
      base_tokenizer_(model_.tokenizer),
      base_text_encoder_config_(model_.text_encoder.config()),
      load_seconds_(load_seconds),
      runtime_(std::move(runtime)) {
  info_.name = model_.name;
  info_.family = model_.family;
  info_.prediction_type = model_.scheduler_config.value("prediction_type", "epsilon");
  info_.scheduler_class = model_.scheduler_config.value("_class_name", "PNDMScheduler");
  info_.default_width = info_.default_height = model_.default_size();
  info_.text_max_length = static_cast<int>(model_.tokenizer.max_length());
  info_.backend = runtime_.device.name();
  info_.threads = runtime_.threads->size();
  info_.attention = attention_kernel_name(model_.attention);
}

std::vector<int64_t> StableDiffusionPipeline::tokenize(const std::string& text,
                                                       size_t* token_count) const {
  auto e = model_.tokenizer.encode_padded(text);
  if (token_count) *token_count = e.tokens;
  return e.input_ids;
}

stages::Conditioning StableDiffusionPipeline::encode_conditioning(const GenerateOptions& o,
                                                                  bool cfg) const {
  const Device device = runtime_.device;
  const bool a1111 = o.prompt_syntax == "a1111";
  const auto encode = [&](const std::string& text) {
    return ops::repeat_batch(a1111 ? stages::encode_prompt_a1111(model_, text, o.clip_skip, device)
                                   : stages::encode_prompt(model_, text, o.clip_skip, device),
                             o.image_count);
  };
  stages::Conditioning c;
  c.context = encode(o.prompt);
  if (!cfg) return c;
  // diffusers and A1111 encode "" when there is no negative prompt.
  const Tensor uncond = encode(o.negative_prompt.value_or(""));
  // Plain prompts are always 77 tokens; A1111 prompts of different chunk counts guide each half
  // on its own.
  if (uncond.dim(1) == c.context.dim(1))
    c.context = ops::concat(uncond, c.context, 0);
  else
    c.uncond_context = uncond;
  return c;
}

void StableDiffusionPipeline::warn_about_prompts(const GenerateOptions& o,
                                                 std::vector<std::string>& warnings) const {
  if (o.prompt_syntax != "a1111") return;
  if (o.clip_skip > 0 && !a1111_applies_clip_skip())
    warnings.push_back("clip skip " + std::to_string(o.clip_skip) +
                       " is ignored: A1111 applies no clip skip to " + model_.family +
                       " models (plain prompt syntax applies it, as diffusers)");
  for (const auto& [what, text] : {std::pair<const char*, std::string>{"prompt", o.prompt},
                                   {"negative prompt", o.negative_prompt.value_or("")}})
    if (a1111::parse_prompt_attention(text).unbalanced)
      warnings.push_back(std::string(what) +
                         ": a bracket without its partner; A1111 syntax weighs everything after "
                         "an unclosed ( or [ (write \\( for a literal bracket)");
}

stages::ResidualSource StableDiffusionPipeline::controls_for(const GenerateOptions& o,
                                                             const stages::Conditioning& cond,
                                                             bool cfg, int evaluations, int width,
                                                             int height) {
  if (o.controlnets.empty()) return {};
  if (cond.split())
    throw ConfigError(
        "ControlNet with A1111 prompts of different lengths (the prompt and the negative prompt "
        "take different numbers of 75-token chunks) is not supported yet");
  std::vector<stages::ControlUnit> units;
  for (const ControlNetSpec& c : o.controlnets)
    units.push_back(
        {controlnet(c.model),
         stages::prepare_control_image(stages::control_map(c), width > 0 ? width : o.width,
                                       height > 0 ? height : o.height, device()),
         c.scale, c.start, c.end});
  return stages::controlnet_residuals(std::move(units), cond, cfg, o.control_guess_mode,
                                      evaluations);
}

std::shared_ptr<const ControlNetModel> StableDiffusionPipeline::controlnet(
    const std::string& path) {
  auto it = controlnets_.find(path);
  if (it != controlnets_.end()) return it->second;
  ControlNetModel net;
  if (std::filesystem::is_directory(path)) {
    net = ControlNetModel::load(path, model_.attention);
  } else {
    // A single file carries no config: its architecture is the UNet's encoder half.
    ControlNetConfig config;
    config.unet = model_.unet.config();
    config.unet.in_channels = model_.vae.config().latent_channels;
    config.unet.up_blocks.clear();
    net = load_controlnet_checkpoint(path, config, model_.attention);
  }
  const int64_t want = model_.unet.config().cross_attention_dim.back(),
                got = net.config().unet.cross_attention_dim.back();
  if (want != got)
    throw ConfigError(path + ": this ControlNet reads " + std::to_string(got) +
                      "-wide text conditioning, but " + model_.name + " produces " +
                      std::to_string(want) + " (a ControlNet for another model family?)");
  auto shared = std::make_shared<const ControlNetModel>(std::move(net));
  controlnets_.emplace(path, shared);
  return shared;
}

std::unique_ptr<Scheduler> StableDiffusionPipeline::make_scheduler_for(
    const GenerateOptions& o, std::string* sampler_name) const {
  nlohmann::json config = model_.scheduler_config;
  std::string cls = config.value("_class_name", "PNDMScheduler");
  SchedulerPreset preset;
  if (!o.scheduler.empty()) {
    preset = scheduler_preset(o.scheduler);
    cls = preset.class_name;
    if (!preset.overrides_json.empty())
      config.merge_patch(nlohmann::json::parse(preset.overrides_json));
  } else {
    preset = scheduler_preset(cls);
  }
  if (o.karras_sigmas) config["use_karras_sigmas"] = *o.karras_sigmas;
  if (!o.timestep_spacing.empty()) config["timestep_spacing"] = o.timestep_spacing;
  // diffusers passes eta to step() of the schedulers that take it (DDIM); ours read it from config.
  if (o.eta) config["eta"] = *o.eta;
  if (sampler_name) {
    *sampler_name = preset.a1111_name.empty() ? cls : preset.a1111_name;
    if (o.karras_sigmas.value_or(false) && sampler_name->find("Karras") == std::string::npos)
      *sampler_name += " Karras";
  }
  return make_scheduler(config, cls);
}

void StableDiffusionPipeline::resolve_size_conditions(GenerateOptions& o) const {
  // They become float time ids; beyond kMaxConditionSize they are typos, not sizes.
  constexpr int kMaxConditionSize = 1 << 16;
  const auto check_size = [](const char* name, const std::optional<SizeHW>& s) {
    if (s && (s->height < 1 || s->width < 1 || s->height > kMaxConditionSize ||
              s->width > kMaxConditionSize))
      throw ConfigError(std::string(name) + " " + std::to_string(s->width) + "x" +
                        std::to_string(s->height) + " must have sides between 1 and " +
                        std::to_string(kMaxConditionSize));
  };
  check_size("original size", o.original_size);
  check_size("target size", o.target_size);
  check_size("negative original size", o.negative_original_size);
  if (o.crop_coords &&
      (o.crop_coords->top < 0 || o.crop_coords->left < 0 ||
       o.crop_coords->top > kMaxConditionSize || o.crop_coords->left > kMaxConditionSize))
    throw ConfigError("crop coordinates " + std::to_string(o.crop_coords->top) + "," +
                      std::to_string(o.crop_coords->left) + " must be between 0 and " +
                      std::to_string(kMaxConditionSize));
  if (!size_conditioned()) return;
  // diffusers' defaults: the generated size, uncropped.
  if (!o.original_size) o.original_size = SizeHW{o.height, o.width};
  if (!o.target_size) o.target_size = SizeHW{o.height, o.width};
  if (!o.crop_coords) o.crop_coords = CropTopLeft{0, 0};
}

void StableDiffusionPipeline::check_refinement(const GenerateOptions& o) const {
  // The aesthetic classifier SDXL's refiner was conditioned on scores images from 0 to 10.
  constexpr float kMaxAestheticScore = 100.f;
  for (auto [name, score] :
       {std::pair<const char*, std::optional<float>>{"aesthetic score", o.aesthetic_score},
        {"negative aesthetic score", o.negative_aesthetic_score}})
    if (score && !(std::isfinite(*score) && *score >= 0.f && *score <= kMaxAestheticScore))
      throw ConfigError(std::string(name) + " must be between 0 and " + fmt(kMaxAestheticScore) +
                        ", got " + fmt(*score));
  if (o.refiner.empty()) return;
  if (model_.family != "sdxl")
    throw ConfigError("refiner " + o.refiner + ": a refiner finishes an SDXL base model's work; " +
                      model_.name + " is an " + model_.family + " model");
  check_fraction(o.high_noise_frac, "high noise fraction");
}

void StableDiffusionPipeline::resolve(GenerateOptions& o) const {
  check_supported(o);
  const int unit = model_.vae_scale_factor();
  if (o.init_image) {
    const Image& im = *o.init_image;
    check_pixels(im, "init image");
    // Init images are resized in memory; beyond this they are a mistake, not a photo.
    constexpr int kMaxInitSide = 16384;
    if (im.width < unit || im.height < unit || im.width > kMaxInitSide || im.height > kMaxInitSide)
      throw ConfigError("init image is " + std::to_string(im.width) + "x" +
                        std::to_string(im.height) + "; each side must be between " +
                        std::to_string(unit) + " and " + std::to_string(kMaxInitSide));
    // img2img: diffusers' VaeImageProcessor.get_default_height_width, the image's own size
    // rounded down to a multiple of the VAE scale factor; inpainting: the model's default size,
    // as StableDiffusionInpaintPipeline (an explicit size is checked below like any other).
    if (!o.mask_image && o.width == 0) o.width = im.width - im.width % unit;
    if (!o.mask_image && o.height == 0) o.height = im.height - im.height % unit;
    if (!o.strength)
      o.strength = o.mask_image ? default_inpaint_strength() : default_img2img_strength();
    if (!(*o.strength > 0.f && *o.strength <= 1.f))
      throw ConfigError("strength must be in (0, 1], got " + fmt(*o.strength));
  } else if (o.mask_image) {
    throw ConfigError("a mask needs the image to inpaint (init image)");
  }
  check_mask(o);
  check_controlnets(o);
  if (o.width == 0) o.width = info_.default_width;
  if (o.height == 0) o.height = info_.default_height;
  for (auto [name, v] : {std::pair<const char*, int>{"width", o.width}, {"height", o.height}}) {
    if (v < unit || v > kMaxSide || v % unit != 0)
      throw ConfigError(std::string(name) + " " + std::to_string(v) + " must be a multiple of " +
                        std::to_string(unit) + " between " + std::to_string(unit) + " and " +
                        std::to_string(kMaxSide));
  }
  if (o.steps < 1 || o.steps > kMaxSteps)
    throw ConfigError("steps must be between 1 and " + std::to_string(kMaxSteps) + ", got " +
                      std::to_string(o.steps));
  if (o.image_count < 1 || o.image_count > kMaxImages)
    throw ConfigError("image count must be between 1 and " + std::to_string(kMaxImages) + ", got " +
                      std::to_string(o.image_count));
  if (!std::isfinite(o.guidance_scale) || o.guidance_scale < 0.f || o.guidance_scale > 100.f)
    throw ConfigError("guidance scale must be between 0 and 100, got " + fmt(o.guidance_scale));
  if (o.prompt_syntax != "plain" && o.prompt_syntax != "a1111")
    throw ConfigError("prompt syntax '" + o.prompt_syntax + "' is not one of plain, a1111");
  if (o.clip_skip < 0 || o.clip_skip >= model_.text_encoder.config().num_hidden_layers)
    throw ConfigError("clip skip must be between 0 and " +
                      std::to_string(model_.text_encoder.config().num_hidden_layers - 1));
  if (o.eta && (!std::isfinite(*o.eta) || *o.eta < 0.0)) throw ConfigError("eta must be >= 0");
  for (const LoraSpec& l : o.loras) {
    // diffusers accepts any weight; beyond this a LoRA only produces noise.
    constexpr float kMaxLoraScale = 100.f;
    if (l.path.empty()) throw ConfigError("LoRA: empty path");
    if (!std::isfinite(l.scale) || std::fabs(l.scale) > kMaxLoraScale)
      throw ConfigError(l.path + ": LoRA scale must be between -" + fmt(kMaxLoraScale) + " and " +
                        fmt(kMaxLoraScale) + ", got " + fmt(l.scale));
  }
  if (o.vae_tiling != "auto" && o.vae_tiling != "on" && o.vae_tiling != "off")
    throw ConfigError("VAE tiling '" + o.vae_tiling + "' is not one of auto, on, off");
  if (o.vae_tile_size != 0) model_.vae.tile_size(VaeTiling{true, o.vae_tile_size});
  resolve_size_conditions(o);
  check_refinement(o);
  check_hires(o);
  // VaeImageProcessor.resize ("only masked" cuts and resizes its region in generate()).
  if (o.init_image && !o.mask_crop &&
      (o.init_image->width != o.width || o.init_image->height != o.height))
    o.init_image = stages::resize_image(*o.init_image, o.width, o.height);
}

GenerationResult StableDiffusionPipeline::generate(const GenerateOptions& options,
                                                   const ProgressCallback& progress) {
  // One generation at a time per pipeline, on its own threads and memory pool: statistics are
  // this call's, and other pipelines in the process are not disturbed.
  std::lock_guard<std::mutex> serial(generate_mu_);
  ThreadPoolScope threads(*runtime_.threads);
  MemoryPoolScope memory(*runtime_.memory);
  ops::FlopCounter flops;
  ops::FlopCounterScope count_flops(flops);
  const auto t_start = Clock::now();
  GenerationResult result;
  result.options = options;
  GenerateOptions& o = result.options;
  resolve(o);
  result.seed = o.seed;
  result.model_name = model_.name;
  result.backend = runtime_.device.name();
  if (!runtime_.warning.empty()) result.warnings.push_back(runtime_.warning);
  result.times.load_s = load_seconds_;
  runtime_.memory->reset_peak();
  // Weights held in pool memory (synthetic or converted ones) are not activations.
  const MemoryStats before = runtime_.memory->stats();

  use_adapters(o.loras, o.embeddings, result.warnings);
  auto scheduler = make_scheduler_for(o, &result.sampler_name);
  result.scheduler_class = std::string(scheduler->class_name());
  auto rng = make_random_source(o.rng, o.seed);

  if (!size_conditioned() &&
      (o.original_size || o.target_size || o.crop_coords || o.negative_original_size))
    result.warnings.push_back(
        "original size, target size and crop coordinates condition SDXL "
        "models only; " +
        model_.name + " ignores them");

  warn_about_prompts(o, result.warnings);
  if (!aesthetic_conditioned() && o.refiner.empty() &&
      (o.aesthetic_score || o.negative_aesthetic_score))
    result.warnings.push_back("aesthetic scores condition SDXL refiners only; " + model_.name +
                              " ignores them");

  // 1. Text conditioning: [uncond x n, cond x n] as one batch when guidance is on.
  auto t0 = Clock::now();
  const bool cfg = o.guidance_scale > 1.f;
  const stages::Conditioning cond = encode_conditioning(o, cfg);
  result.times.text_encoder_s = seconds_since(t0);
  result.flops.text_encoder = std::exchange(flops.flops, 0.0);
  end_of_stage({model_.text_encoder_weights.get(), other_text_encoder_weights()});

  // 2. Schedule(s), the conditioned UNet and initial latents ("only masked": of the region).
  t0 = Clock::now();
  std::optional<stages::MaskedRegion> region;
  GenerateOptions region_options;
  if (o.mask_crop) {
    region = stages::cut_masked_region(*o.init_image, *o.mask_image, o.mask_blur, o.width, o.height,
                                       *o.mask_crop);
    region_options = o;
    region_options.init_image = region->image;
    region_options.mask_image = region->region_mask;
    region_options.mask_blur = 0;  // blurred before the cut
  }
  std::vector<double> timesteps = timesteps_for(o, *scheduler);
  const FinishingPass finish = plan_finishing_pass(o, cond, cfg, timesteps);
  stages::NoisePredictor unet = stages::unet_predictor(
      model_.unet, cond, controls_for(o, cond, cfg, static_cast<int>(timesteps.size())));
  Start start = prepare(region ? region_options : o, *scheduler, *rng, timesteps, std::move(unet));
  // 3. Denoising loop.
  stages::DenoiseLoop loop{*scheduler,
                           std::move(timesteps),
                           stages::with_guidance(std::move(start.unet), cfg, o.guidance_scale),
                           rng.get(),
                           {},
                           std::move(start.adjust)};
  const auto loop_start = Clock::now();
  const int total = static_cast<int>(loop.timesteps.size()) + finish.evaluations;
  // Progress counts the model evaluations of both passes.
  const auto report_from = [&](int offset) -> stages::StepHook {
    if (!progress) return {};
    return [&, offset](Tensor& x, int step, double t) {
      return progress(
          progress_report(x, offset + step, total, t, seconds_since(loop_start), o.preview));
    };
  };
  loop.after_step = report_from(0);
  Tensor final_latents = stages::denoise(loop, std::move(start.latents));
  if (finish.run)
    final_latents =
        finish.run(final_latents, *rng, report_from(static_cast<int>(loop.timesteps.size())));
  result.times.denoise_s = seconds_since(t0);
  result.flops.denoise = std::exchange(flops.flops, 0.0);
  end_of_stage({model_.unet_weights.get()});

  // 4. Decode.
  t0 = Clock::now();
  const StableDiffusionModel& decoder = finish.decoder ? *finish.decoder : model_;
  result.images = stages::tensor_to_images(stages::decode_latents(
      decoder, final_latents,
      decode_plan(o, decoder, final_latents, runtime_.load_options.low_memory)));
  if (region) {
    for (Image& im : result.images) {
      const Rgb8Image out = stages::apply_overlay(
          region->mask, region->original, {im.width, im.height, im.to_rgb8()}, region->region);
      im = Image::from_rgb8(out.width, out.height, out.pixels);
    }
  }
  result.times.vae_s = seconds_since(t0);
  result.flops.vae = std::exchange(flops.flops, 0.0);
  result.times.total_s = seconds_since(t_start);
  const MemoryStats after = runtime_.memory->stats();
  result.peak_activation_bytes = after.peak_bytes - before.live_bytes;
  result.activation_system_allocations = after.system_allocations - before.system_allocations;
  return result;
}

std::vector<double> StableDiffusionPipeline::timesteps_for(const GenerateOptions& o,
                                                           Scheduler& scheduler) const {
  scheduler.set_timesteps(o.steps);
  if (!o.init_image) return scheduler.timesteps();
  return cut_schedule(scheduler, o.steps, *o.strength);
}

StableDiffusionPipeline::FinishingPass StableDiffusionPipeline::plan_finishing_pass(
    const GenerateOptions& o, const stages::Conditioning& cond, bool cfg,
    std::vector<double>& timesteps) {
  if (!o.hires) return {};
  auto pass = std::make_shared<HiresPass>(plan_hires(o));
  FinishingPass finish;
  finish.evaluations = static_cast<int>(pass->timesteps.size());
  const stages::Conditioning hires_cond =
      hires_conditioning(o, cond, cfg, pass->width, pass->height);
  // The ControlNets act in the second pass too, their images at its size (the sd-webui-controlnet
  // extension's default, "Both").
  stages::ResidualSource controls =
      controls_for(o, hires_cond, cfg, finish.evaluations, pass->width, pass->height);
  finish.run = [this, &o, hires_cond, controls = std::move(controls), cfg, pass](
                   const Tensor& latents, RandomSource&, stages::StepHook report) {
    return run_hires(o, hires_cond, controls, cfg, *pass, latents, std::move(report));
  };
  return finish;
}

StableDiffusionPipeline::HiresPass StableDiffusionPipeline::plan_hires(
    const GenerateOptions& o) const {
  const HiresFix& h = *o.hires;
  HiresPass pass;
  const int unit = model_.vae_scale_factor();
  pass.width = static_cast<int>(static_cast<float>(o.width) * h.scale) / unit * unit;
  pass.height = static_cast<int>(static_cast<float>(o.height) * h.scale) / unit * unit;
  pass.scheduler = make_scheduler_for(o, nullptr);
  const int steps = h.steps > 0 ? h.steps : o.steps;
  pass.scheduler->set_timesteps(steps);
  pass.timesteps = cut_schedule(*pass.scheduler, steps, h.strength);
  return pass;
}

Tensor StableDiffusionPipeline::run_hires(const GenerateOptions& o,
                                          const stages::Conditioning& cond,
                                          const stages::ResidualSource& controls, bool cfg,
                                          HiresPass& pass, const Tensor& latents,
                                          stages::StepHook report) const {
  // A second generator seeded with the seed: the pass is the img2img call it stands for.
  auto rng = make_random_source(o.rng, o.seed);
  const int unit = model_.vae_scale_factor();
  Tensor start;
  if (o.hires->upscaler == "lanczos") {
    std::vector<Image> images = stages::tensor_to_images(stages::decode_latents(
        model_, latents, decode_plan(o, model_, latents, runtime_.load_options.low_memory)));
    Tensor batch;
    for (size_t i = 0; i < images.size(); ++i) {
      // A1111 resizes the 8-bit image.
      const Tensor t = stages::image_to_tensor(
          stages::resize_image(images[i], pass.width, pass.height), device());
      batch = i == 0 ? t : ops::concat(batch, t, 0);
    }
    start =
        stages::encode_and_noise(model_, batch, 1, *pass.scheduler, pass.timesteps.front(), *rng);
  } else {
    const Tensor upscaled = stages::upscale_latents(latents, pass.height / unit, pass.width / unit,
                                                    o.hires->upscaler == "latent-bilinear");
    const Tensor noise = rng->randn(upscaled.shape()).on(device());
    start = pass.scheduler->add_noise(upscaled, noise, pass.timesteps.front());
  }
  stages::DenoiseLoop loop{
      *pass.scheduler,
      pass.timesteps,
      stages::with_guidance(stages::unet_predictor(model_.unet, cond, controls), cfg,
                            o.guidance_scale),
      rng.get(),
      std::move(report),
      {}};
  return stages::denoise(loop, std::move(start));
}

std::vector<double> StableDiffusionPipeline::cut_schedule(Scheduler& scheduler, int steps,
                                                          float strength) const {
  std::vector<double> timesteps = scheduler.timesteps();
  // img2img cuts the schedule by strength (diffusers' get_timesteps).
  const int init_timestep = std::min(static_cast<int>(steps * strength), steps);
  const int t_begin = std::max(steps - init_timestep, 0) * scheduler.order();
  if (t_begin >= static_cast<int>(timesteps.size()))
    throw ConfigError("strength " + fmt(strength) + " with " + std::to_string(steps) +
                      " steps leaves no denoising steps (steps x strength must be at least 1)");
  timesteps.erase(timesteps.begin(), timesteps.begin() + t_begin);
  scheduler.set_begin_index(t_begin);
  return timesteps;
}

StableDiffusionPipeline::Start StableDiffusionPipeline::prepare(
    const GenerateOptions& o, Scheduler& scheduler, RandomSource& rng,
    const std::vector<double>& timesteps, stages::NoisePredictor unet) const {
  const Device device = runtime_.device;
  const int unit = model_.vae_scale_factor();
  const int64_t C = model_.vae.config().latent_channels, h = o.height / unit, w = o.width / unit;
  Start start;
  start.unet = std::move(unet);
  if (!o.init_image) {
    start.latents =
        stages::initial_noise(rng, {o.image_count, C, h, w}, scheduler.init_noise_sigma(), device);
    return start;
  }
  const Tensor image = stages::image_to_tensor(*o.init_image, device);
  if (!o.mask_image) {
    start.latents =
        stages::encode_and_noise(model_, image, o.image_count, scheduler, timesteps.front(), rng);
    return start;
  }
  // StableDiffusionInpaintPipeline, with A1111's masked content.
  const Tensor mask = stages::prepare_mask(*o.mask_image, o.width, o.height, o.mask_blur, device);
  const stages::MaskedStart masked = stages::masked_start(o, image, unit, device);
  stages::InpaintLatents inpaint =
      stages::prepare_inpaint_latents(model_, masked.image, mask, o.image_count, *o.strength == 1.f,
                                      scheduler, timesteps.front(), rng, masked.content);
  start.latents = inpaint.latents;
  if (model_.unet.config().in_channels == 9) {
    start.unet = stages::with_inpainting_channels(std::move(start.unet), inpaint.mask,
                                                  inpaint.masked_image_latents);
  } else {
    start.adjust = stages::keep_unmasked_region(inpaint, scheduler, timesteps);
  }
  return start;
}

void StableDiffusionPipeline::use_adapters(const std::vector<LoraSpec>& loras,
                                           const std::vector<std::string>& embeddings,
                                           std::vector<std::string>& warnings) {
  if (loras == applied_loras_ && embeddings == applied_embeddings_) return;
  std::vector<LoraApplication> applications;
  for (const LoraSpec& spec : loras)
    applications.push_back(
        {std::make_shared<const LoraFile>(read_lora_file(spec.path)), spec.scale});
  std::vector<size_t> total(loras.size(), 0), matched;
  const auto count = [&] {
    for (size_t i = 0; i < total.size(); ++i) total[i] += matched[i];
  };
  // Build everything before replacing anything: a failure leaves the pipeline as it was.
  UNet2DConditionModel unet = UNet2DConditionModel::from_weights(
      model_.unet.config(), apply_loras(*model_.unet_weights, "unet", applications, matched));
  count();
  WeightStore text_encoder_weights =
      apply_loras(*model_.text_encoder_weights, "text_encoder", applications, matched);
  count();
  ClipTextConfig text_encoder_config = base_text_encoder_config_;
  ClipTokenizer tokenizer = base_tokenizer_;
  add_embeddings(embeddings, first_encoder_embedding_part(), text_encoder_weights,
                 text_encoder_config, tokenizer);
  ClipTextModel text_encoder =
      ClipTextModel::from_weights(text_encoder_config, text_encoder_weights);
  const std::function<void()> install_other_encoders =
      adapters_for_other_encoders(applications, embeddings, matched);
  count();
  for (size_t i = 0; i < loras.size(); ++i) {
    const size_t modules = applications[i].file->modules.size();
    if (total[i] == 0)
      throw ConfigError(loras[i].path + ": none of its " + std::to_string(modules) +
                        " LoRA modules is in " + model_.name +
                        " (a LoRA for another model family?)");
    if (total[i] < modules)
      warnings.push_back(loras[i].path + ": " + std::to_string(modules - total[i]) + " of its " +
                         std::to_string(modules) + " LoRA modules match nothing in " + model_.name +
                         " and were ignored");
  }
  model_.unet = std::move(unet);
  model_.text_encoder = std::move(text_encoder);
  model_.tokenizer = std::move(tokenizer);
  install_other_encoders();
  applied_loras_ = loras;
  applied_embeddings_ = embeddings;
}

void StableDiffusionPipeline::check_hires(const GenerateOptions& o) const {
  if (!o.hires) return;
  const HiresFix& h = *o.hires;
  if (o.init_image) throw ConfigError("hires fix is for text-to-image (no init image)");
  constexpr float kMaxHiresScale = 8.f;
  if (!std::isfinite(h.scale) || h.scale < 1.f || h.scale > kMaxHiresScale)
    throw ConfigError("hires scale must be between 1 and " + fmt(kMaxHiresScale) + ", got " +
                      fmt(h.scale));
  if (h.steps < 0 || h.steps > kMaxSteps)
    throw ConfigError("hires steps must be between 0 (= steps) and " + std::to_string(kMaxSteps));
  if (!(h.strength > 0.f && h.strength <= 1.f))
    throw ConfigError("hires strength must be in (0, 1], got " + fmt(h.strength));
  if (h.upscaler != "latent" && h.upscaler != "latent-bilinear" && h.upscaler != "lanczos")
    throw ConfigError("hires upscaler '" + h.upscaler +
                      "' is not one of latent, latent-bilinear, lanczos");
  const int unit = model_.vae_scale_factor();
  for (auto [name, side] : {std::pair<const char*, int>{"width", o.width}, {"height", o.height}}) {
    const int big = static_cast<int>(static_cast<float>(side) * h.scale) / unit * unit;
    if (big > kMaxSide)
      throw ConfigError(std::string("hires ") + name + " " + std::to_string(big) + " (the " + name +
                        " x scale) is above " + std::to_string(kMaxSide));
  }
}

void StableDiffusionPipeline::check_controlnets(GenerateOptions& o) const {
  if (o.controlnets.empty()) {
    if (o.control_guess_mode) throw ConfigError("ControlNet guess mode needs a ControlNet");
    return;
  }
  constexpr float kMaxControlScale = 100.f;
  for (size_t i = 0; i < o.controlnets.size(); ++i) {
    const ControlNetSpec& c = o.controlnets[i];
    const std::string what = "ControlNet " + std::to_string(i + 1) + " (" + c.model + ")";
    const Image& im = c.image;
    check_pixels(im, what + ": control image");
    constexpr int kMaxControlSide = 16384;
    if (im.width > kMaxControlSide || im.height > kMaxControlSide)
      throw ConfigError(what + ": control image sides must be at most " +
                        std::to_string(kMaxControlSide));
    if (!std::isfinite(c.scale) || c.scale < 0.f || c.scale > kMaxControlScale)
      throw ConfigError(what + ": scale must be between 0 and " + fmt(kMaxControlScale) + ", got " +
                        fmt(c.scale));
    if (!c.preprocessor.empty() && c.preprocessor != "none" && c.preprocessor != "canny")
      throw ConfigError(what + ": preprocessor '" + c.preprocessor + "' is not one of none, canny");
    if (c.preprocessor == "canny" &&
        !(std::isfinite(c.low_threshold) && std::isfinite(c.high_threshold) &&
          c.low_threshold >= 0 && c.high_threshold >= 0 && c.low_threshold <= 10000 &&
          c.high_threshold <= 10000))
      throw ConfigError(what + ": canny thresholds must be between 0 and 10000, got " +
                        fmt(c.low_threshold) + " and " + fmt(c.high_threshold));
    // diffusers' check_inputs: 0 <= start < end <= 1.
    if (!(c.start >= 0 && c.start < c.end && c.end <= 1))
      throw ConfigError(what + ": guidance window start " + fmt(c.start) + ", end " + fmt(c.end) +
                        " must satisfy 0 <= start < end <= 1");
  }
  // StableDiffusionControlNetPipeline: the size defaults to the (first) control image's, rounded
  // down to a multiple of the VAE scale factor.
  const int unit = model_.vae_scale_factor();
  const Image& first = o.controlnets.front().image;
  if (o.width == 0) o.width = std::max(unit, first.width - first.width % unit);
  if (o.height == 0) o.height = std::max(unit, first.height - first.height % unit);
}

void StableDiffusionPipeline::check_mask(const GenerateOptions& o) const {
  const int64_t channels = model_.unet.config().in_channels;
  if (!o.mask_image) {
    if (channels == 9)
      throw ConfigError(model_.name +
                        " is an inpainting model (9-channel UNet): give it an image and a mask");
    if (o.mask_blur != 0) throw ConfigError("mask blur needs a mask");
    if (o.mask_crop) throw ConfigError("mask crop needs a mask");
    if (o.masked_content != "original") throw ConfigError("masked content needs a mask");
    return;
  }
  if (channels != 4 && channels != 9)
    throw ConfigError("inpainting needs a UNet with 4 or 9 input channels; " + model_.name +
                      "'s has " + std::to_string(channels));
  const Image& m = *o.mask_image;
  check_pixels(m, "mask");
  constexpr int kMaxMaskSide = 16384, kMaxMaskBlur = 256;
  if (m.width > kMaxMaskSide || m.height > kMaxMaskSide)
    throw ConfigError("mask is " + std::to_string(m.width) + "x" + std::to_string(m.height) +
                      "; each side must be at most " + std::to_string(kMaxMaskSide));
  if (o.mask_blur < 0 || o.mask_blur > kMaxMaskBlur)
    throw ConfigError("mask blur must be between 0 and " + std::to_string(kMaxMaskBlur) +
                      " pixels, got " + std::to_string(o.mask_blur));
  if (!stages::is_masked_content(o.masked_content))
    throw ConfigError("masked content '" + o.masked_content +
                      "' is not one of original, fill, latent-noise, latent-nothing");
  if (o.mask_crop) {
    if (*o.mask_crop < 0 || *o.mask_crop > kMaxMaskSide)
      throw ConfigError("mask crop padding must be between 0 and " + std::to_string(kMaxMaskSide) +
                        " pixels, got " + std::to_string(*o.mask_crop));
    const Image& im = *o.init_image;
    if (m.width != im.width || m.height != im.height)
      throw ConfigError("mask crop: the mask is " + std::to_string(m.width) + "x" +
                        std::to_string(m.height) + ", the image " + std::to_string(im.width) + "x" +
                        std::to_string(im.height) + "; they must be the same size");
  }
}

Progress StableDiffusionPipeline::progress_report(const Tensor& latents, int step, int total,
                                                  double t, double elapsed, bool preview) const {
  Progress p;
  p.step = step;
  p.total_steps = total;
  p.timestep = t;
  p.elapsed_s = elapsed;
  p.latent_shape.assign(latents.shape().begin(), latents.shape().end());
  p.read_latents = [&latents] { return latents.to_vector(); };
  if (preview) p.preview = latent_preview(latents, 0);
  return p;
}

std::unique_ptr<Pipeline> Pipeline::load(const std::string& model_dir, const LoadOptions& options) {
  const auto t0 = Clock::now();
  if (options.threads < 0)
    throw ConfigError("threads must be >= 0 (0 = all cores), got " +
                      std::to_string(options.threads));
  const WeightPrecision precision = weight_precision(options);  // unknown names fail first
  weight_variant(options);
  attention_kernel(options, {});
  if (options.device < 0)
    throw ConfigError("device must be >= 0, got " + std::to_string(options.device));
  const bool gpu_name = options.backend == "cuda" || options.backend == "cpuAndGPU";
  const DeviceChoice choice = resolve_device(
      gpu_name && options.device > 0 ? options.backend + ":" + std::to_string(options.device)
                                     : options.backend);
  std::string warning = choice.warning;
  if ((precision == WeightPrecision::BF16 || precision == WeightPrecision::Int8) &&
      choice.device == kCpu && !cpu_has_avx512_bf16())
    warning += std::string(warning.empty() ? "" : "; ") + "precision " + options.precision +
               ": this CPU has no AVX512_BF16, so the bfloat16 products are computed through "
               "float32 (the same results, slower than f32)";
  StableDiffusionPipeline::Runtime runtime{
      choice.device, std::make_shared<ThreadPool>(options.threads),
      options.low_memory ? MemoryPool::create(false, MemoryPool::LargeBlocks::Heap)
                         : MemoryPool::create(),
      warning, options};
  ThreadPoolScope threads(*runtime.threads);
  MemoryPoolScope memory(*runtime.memory);
  if (is_single_file_checkpoint(model_dir)) {
    auto model = load_checkpoint_model(model_dir, options);
    if (auto* xl = std::get_if<StableDiffusionXLModel>(&model))
      return std::make_unique<StableDiffusionXLPipeline>(std::move(*xl), seconds_since(t0),
                                                         std::move(runtime));
    return std::make_unique<StableDiffusionPipeline>(
        std::move(std::get<StableDiffusionModel>(model)), seconds_since(t0), std::move(runtime));
  }
  if (is_stable_diffusion_xl_folder(model_dir)) {
    StableDiffusionXLModel model = load_stable_diffusion_xl_folder(model_dir, options);
    return std::make_unique<StableDiffusionXLPipeline>(std::move(model), seconds_since(t0),
                                                       std::move(runtime));
  }
  StableDiffusionModel model = load_stable_diffusion_folder(model_dir, options);
  return std::make_unique<StableDiffusionPipeline>(std::move(model), seconds_since(t0),
                                                   std::move(runtime));
}

void StableDiffusionPipeline::end_of_stage(
    std::initializer_list<const WeightStore*> finished) const {
  // The component that just ran gives its file pages back (the next generation reads them from
  // the page cache again: a fraction of a second against minutes), so a mapped 16-bit or float32
  // model is resident one component at a time rather than all at once.
  for (const WeightStore* store : finished)
    if (store) store->release_file_pages();
  // Each stage leaves the activation pool holding blocks of its own shapes, which the next stage
  // cannot reuse: they go back to the system (512², --precision int8: 2926 -> 2418 MiB peak, the
  // UNet's cached blocks no longer beside the VAE's). The next generation faults them in again,
  // ~0.1 s against a step of seconds.
  runtime_.memory->release_cached();
}

std::vector<std::string> scheduler_names() {
  return scheduler_preset_names();
}

}  // namespace diffuse
