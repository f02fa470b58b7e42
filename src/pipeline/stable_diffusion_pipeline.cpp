#include "pipeline/stable_diffusion_pipeline.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/allocator.h"
#include "io/image_resize.h"
#include "pipeline/checkpoint_loader.h"
#include "pipeline/latent_preview.h"
#include "random/random_source.h"

namespace diffuse {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
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

void check_finite(const Tensor& t, const std::string& what) {
  const float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i]))
      throw NumericError(what +
                         " contains NaN or infinity (the model weights or settings produce "
                         "non-finite values)");
}

/// Repeats [1, ...] along the batch dimension.
Tensor repeat_batch(const Tensor& t, int copies) {
  Shape s = t.shape();
  const int64_t one = t.numel() / s[0];
  s[0] *= copies;
  Tensor out = Tensor::empty(s);
  for (int64_t b = 0; b < s[0]; ++b)
    std::memcpy(out.f32() + b * one, t.f32() + (b % t.dim(0)) * one,
                sizeof(float) * static_cast<size_t>(one));
  return out;
}

Tensor concat_batch(const Tensor& a, const Tensor& b) {
  Shape s = a.shape();
  s[0] += b.dim(0);
  Tensor out = Tensor::empty(s);
  std::memcpy(out.f32(), a.f32(), a.nbytes());
  std::memcpy(out.f32() + a.numel(), b.f32(), b.nbytes());
  return out;
}

/// Image HWC [0,1] -> tensor [1,3,H,W] in [-1,1] (diffusers' VaeImageProcessor.preprocess).
Tensor image_to_tensor(const Image& img) {
  Tensor t = Tensor::empty({1, 3, img.height, img.width});
  const int64_t hw = int64_t(img.height) * img.width;
  for (int64_t p = 0; p < hw; ++p)
    for (int c = 0; c < 3; ++c)
      t.f32()[c * hw + p] = img.rgb[static_cast<size_t>(p * 3 + c)] * 2.f - 1.f;
  return t;
}

/// Decoded [B,3,H,W] in [-1,1] -> images in [0,1] (x/2 + 0.5, clamped), as diffusers postprocesses.
std::vector<Image> tensor_to_images(const Tensor& t) {
  const int64_t B = t.dim(0), H = t.dim(2), W = t.dim(3), hw = H * W;
  std::vector<Image> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    Image& img = out[static_cast<size_t>(b)];
    img.width = static_cast<int>(W);
    img.height = static_cast<int>(H);
    img.rgb.resize(static_cast<size_t>(hw * 3));
    const float* src = t.f32() + b * 3 * hw;
    for (int64_t p = 0; p < hw; ++p)
      for (int c = 0; c < 3; ++c)
        img.rgb[static_cast<size_t>(p * 3 + c)] =
            std::clamp(src[c * hw + p] / 2.f + 0.5f, 0.f, 1.f);
  }
  return out;
}

}  // namespace

StableDiffusionPipeline::StableDiffusionPipeline(StableDiffusionModel model, double load_seconds)
    : model_(std::move(model)), load_seconds_(load_seconds) {
  info_.name = model_.name;
  info_.family = model_.family;
  info_.prediction_type = model_.scheduler_config.value("prediction_type", "epsilon");
  info_.scheduler_class = model_.scheduler_config.value("_class_name", "PNDMScheduler");
  info_.default_width = info_.default_height = model_.default_size();
  info_.text_max_length = static_cast<int>(model_.tokenizer.max_length());
}

std::vector<int64_t> StableDiffusionPipeline::tokenize(const std::string& text,
                                                       size_t* token_count) const {
  auto e = model_.tokenizer.encode_padded(text);
  if (token_count) *token_count = e.tokens;
  return e.input_ids;
}

Tensor StableDiffusionPipeline::encode_prompt(const std::string& text, int clip_skip,
                                              int copies) const {
  auto e = model_.tokenizer.encode_padded(text);
  Tensor ids = Tensor::empty({1, static_cast<int64_t>(e.input_ids.size())}, DType::I64);
  std::memcpy(ids.raw(), e.input_ids.data(), e.input_ids.size() * sizeof(int64_t));
  return repeat_batch(model_.text_encoder.encode(ids, clip_skip), copies);
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

void StableDiffusionPipeline::resolve(GenerateOptions& o) const {
  const int unit = model_.vae_scale_factor();
  if (o.init_image) {
    const Image& im = *o.init_image;
    if (im.width <= 0 || im.height <= 0 ||
        im.rgb.size() != size_t(im.width) * size_t(im.height) * 3)
      throw ConfigError("init image: empty or inconsistent pixel buffer");
    // Init images are resized in memory; beyond this they are a mistake, not a photo.
    constexpr int kMaxInitSide = 16384;
    if (im.width < unit || im.height < unit || im.width > kMaxInitSide || im.height > kMaxInitSide)
      throw ConfigError("init image is " + std::to_string(im.width) + "x" +
                        std::to_string(im.height) + "; each side must be between " +
                        std::to_string(unit) + " and " + std::to_string(kMaxInitSide));
    // diffusers' VaeImageProcessor.get_default_height_width: the image's own size rounded down to
    // a multiple of the VAE scale factor (an explicit size is checked below like any other).
    if (o.width == 0) o.width = im.width - im.width % unit;
    if (o.height == 0) o.height = im.height - im.height % unit;
    if (!(o.strength > 0.f && o.strength <= 1.f))
      throw ConfigError("strength must be in (0, 1], got " + fmt(o.strength));
  }
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
  if (o.clip_skip < 0 || o.clip_skip >= model_.text_encoder.config().num_hidden_layers)
    throw ConfigError("clip skip must be between 0 and " +
                      std::to_string(model_.text_encoder.config().num_hidden_layers - 1));
  if (o.eta && (!std::isfinite(*o.eta) || *o.eta < 0.0)) throw ConfigError("eta must be >= 0");
  // VaeImageProcessor.resize: PIL `image.resize((width, height), Image.LANCZOS)` on the 8-bit
  // image (to_rgb8 is exact for images read from 8-bit PNGs).
  if (o.init_image && (o.init_image->width != o.width || o.init_image->height != o.height)) {
    const Image& im = *o.init_image;
    const Rgb8Image resized =
        resize_lanczos(Rgb8Image{im.width, im.height, im.to_rgb8()}, o.width, o.height);
    o.init_image = Image::from_rgb8(resized.width, resized.height, resized.pixels);
  }
}

GenerationResult StableDiffusionPipeline::generate(const GenerateOptions& options,
                                                   const ProgressCallback& progress) {
  const auto t_start = Clock::now();
  GenerationResult result;
  result.options = options;
  GenerateOptions& o = result.options;
  resolve(o);
  result.seed = o.seed;
  result.model_name = model_.name;
  result.times.load_s = load_seconds_;
  reset_peak_memory();
  // Weights held in pool memory (synthetic or converted ones) are not activations.
  const size_t resident_before = memory_stats().live_bytes;

  auto scheduler = make_scheduler_for(o, &result.sampler_name);
  result.scheduler_class = std::string(scheduler->class_name());
  auto rng = make_random_source(o.rng, o.seed);

  // 1. Text conditioning: [uncond x n, cond x n] as one batch when guidance is on.
  auto t0 = Clock::now();
  const bool cfg = o.guidance_scale > 1.f;
  const int n = o.image_count;
  Tensor context = encode_prompt(o.prompt, o.clip_skip, n);
  if (cfg) context = concat_batch(encode_prompt(o.negative_prompt, o.clip_skip, n), context);
  result.times.text_encoder_s = seconds_since(t0);

  // 2. Schedule and initial latents.
  t0 = Clock::now();
  scheduler->set_timesteps(o.steps);
  std::vector<double> timesteps = scheduler->timesteps();
  const int unit = model_.vae_scale_factor();
  const int64_t C = model_.unet.config().in_channels, h = o.height / unit, w = o.width / unit;
  const float scaling = static_cast<float>(model_.vae.config().scaling_factor);
  Tensor latents;
  if (o.init_image) {
    // img2img: cut the schedule by strength, then noise the encoded image to the first timestep.
    const int init_timestep = std::min(static_cast<int>(o.steps * o.strength), o.steps);
    const int t_begin = std::max(o.steps - init_timestep, 0) * scheduler->order();
    if (t_begin >= static_cast<int>(timesteps.size()))
      throw ConfigError("strength " + fmt(o.strength) + " with " + std::to_string(o.steps) +
                        " steps leaves no denoising steps (steps x strength must be at least 1)");
    timesteps.erase(timesteps.begin(), timesteps.begin() + t_begin);
    scheduler->set_begin_index(t_begin);
    auto dist = model_.vae.encode(image_to_tensor(*o.init_image));
    // latent_dist.sample(generator): mean + exp(0.5 * logvar) * randn, drawn before the noise.
    Tensor eps = rng->randn(dist.mean.shape());
    Tensor init = Tensor::empty(dist.mean.shape());
    for (int64_t i = 0; i < init.numel(); ++i)
      init.f32()[i] =
          scaling * (dist.mean.f32()[i] + std::exp(0.5f * dist.logvar.f32()[i]) * eps.f32()[i]);
    init = repeat_batch(init, n);
    Tensor noise = rng->randn({n, C, h, w});
    latents = scheduler->add_noise(init, noise, timesteps.front());
  } else {
    latents = rng->randn({n, C, h, w});
    ops::scale_(latents, static_cast<float>(scheduler->init_noise_sigma()));
  }

  // 3. Denoising loop.
  const auto loop_start = Clock::now();
  int step = 0;
  for (double t : timesteps) {
    Tensor input = cfg ? concat_batch(latents, latents) : latents;
    input = scheduler->scale_model_input(input, t);
    std::vector<double> ts(static_cast<size_t>(input.dim(0)), t);
    Tensor eps = model_.unet.forward(input, ts, context);
    if (cfg) {
      // uncond + g * (cond - uncond)
      Tensor guided = Tensor::empty(latents.shape());
      const int64_t half = latents.numel();
      const float* u = eps.f32();
      const float* c = eps.f32() + half;
      const float g = o.guidance_scale;
      for (int64_t i = 0; i < half; ++i) guided.f32()[i] = u[i] + g * (c[i] - u[i]);
      eps = std::move(guided);
    }
    latents = scheduler->step(eps, t, latents, rng.get());
    ++step;
    if (progress) {
      Progress p;
      p.step = step;
      p.total_steps = static_cast<int>(timesteps.size());
      p.timestep = t;
      p.elapsed_s = seconds_since(loop_start);
      p.read_latents = [&latents] {
        const Tensor host = latents.contiguous();
        return std::vector<float>(host.f32(), host.f32() + host.numel());
      };
      p.latent_shape.assign(latents.shape().begin(), latents.shape().end());
      if (o.preview) p.preview = latent_preview(latents, 0);
      if (!progress(p)) throw Cancelled();
    }
  }
  check_finite(latents, "latents after step " + std::to_string(step));
  result.times.denoise_s = seconds_since(t0);

  // 4. Decode.
  t0 = Clock::now();
  Tensor scaled = latents.clone();
  ops::scale_(scaled, 1.f / scaling);
  Tensor decoded = model_.vae.decode(scaled);
  check_finite(decoded, "decoded image");
  result.images = tensor_to_images(decoded);
  result.times.vae_s = seconds_since(t0);
  result.times.total_s = seconds_since(t_start);
  result.peak_activation_bytes = memory_stats().peak_bytes - resident_before;
  return result;
}

std::unique_ptr<Pipeline> Pipeline::load(const std::string& model_dir, const LoadOptions& options) {
  const auto t0 = Clock::now();
  StableDiffusionModel model = is_single_file_checkpoint(model_dir)
                                   ? load_stable_diffusion_checkpoint(model_dir, options)
                                   : load_stable_diffusion_folder(model_dir, options);
  return std::make_unique<StableDiffusionPipeline>(std::move(model), seconds_since(t0));
}

std::vector<std::string> scheduler_names() {
  return scheduler_preset_names();
}

}  // namespace diffuse
