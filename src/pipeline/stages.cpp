#include "pipeline/stages.h"

#include <algorithm>
#include <cmath>

#include "backend/ops.h"
#include "io/image_resize.h"

namespace diffuse::stages {

using ops::expr::in;

namespace {
Tensor token_ids(const ClipTokenizer& tokenizer, const std::string& text, Device device) {
  const auto e = tokenizer.encode_padded(text);
  Tensor ids = Tensor::empty({1, static_cast<int64_t>(e.input_ids.size())}, DType::I64);
  std::copy(e.input_ids.begin(), e.input_ids.end(), ids.data_as<int64_t>());
  return ids.on(device);
}
}  // namespace

Tensor encode_prompt(const StableDiffusionModel& model, const std::string& text, int clip_skip,
                     Device device) {
  return model.text_encoder.encode(token_ids(model.tokenizer, text, device), clip_skip);
}

Tensor image_to_tensor(const Image& image, Device device) {
  const int64_t h = image.height, w = image.width;
  const Tensor hwc = Tensor::from_floats(image.rgb.data(), {1, h * w, 3}).on(device);
  return ops::evaluate(in(0) * 2.f - 1.f, {ops::nlc_to_nchw(hwc, h, w)});
}

std::vector<Image> tensor_to_images(const Tensor& decoded) {
  const int64_t B = decoded.dim(0), H = decoded.dim(2), W = decoded.dim(3);
  const Tensor unit = ops::evaluate(clamp(in(0) / 2.f + 0.5f, 0.f, 1.f), {decoded});
  const std::vector<float> hwc = ops::nchw_to_nlc(unit).to_vector();  // one host copy
  std::vector<Image> out(static_cast<size_t>(B));
  const auto per_image = static_cast<size_t>(H * W * 3);
  for (size_t b = 0; b < out.size(); ++b) {
    out[b].width = static_cast<int>(W);
    out[b].height = static_cast<int>(H);
    out[b].rgb.assign(hwc.begin() + static_cast<std::ptrdiff_t>(b * per_image),
                      hwc.begin() + static_cast<std::ptrdiff_t>((b + 1) * per_image));
  }
  return out;
}

Image resize_image(const Image& image, int width, int height) {
  const Rgb8Image resized =
      resize_lanczos(Rgb8Image{image.width, image.height, image.to_rgb8()}, width, height);
  return Image::from_rgb8(resized.width, resized.height, resized.pixels);
}

void check_finite(const Tensor& t, const std::string& what) {
  const int64_t bad = ops::count_nonfinite(t);
  if (bad > 0)
    throw NumericError(what + " contains " + std::to_string(bad) +
                       " NaN or infinite values (the model weights or settings produce "
                       "non-finite values)");
}

Tensor initial_noise(RandomSource& rng, const Shape& shape, double init_noise_sigma,
                     Device device) {
  Tensor latents = rng.randn(shape).on(device);
  ops::scale_(latents, static_cast<float>(init_noise_sigma));
  return latents;
}

Tensor vae_posterior_sample(const StableDiffusionModel& model, const Tensor& image,
                            RandomSource& rng) {
  const auto dist = model.vae.encode(image);
  const float scaling = static_cast<float>(model.vae.config().scaling_factor);
  // latent_dist.sample(generator): mean + exp(0.5 * logvar) * randn.
  const Tensor eps = rng.randn(dist.mean.shape()).on(image.device());
  return ops::evaluate(scaling * (in(0) + exp(0.5f * in(1)) * in(2)),
                       {dist.mean, dist.logvar, eps});
}

Tensor encode_and_noise(const StableDiffusionModel& model, const Tensor& image, int copies,
                        Scheduler& scheduler, double timestep, RandomSource& rng) {
  // The posterior sample is drawn before the noise.
  const Tensor init = ops::repeat_batch(vae_posterior_sample(model, image, rng), copies);
  const Tensor noise = rng.randn(init.shape()).on(image.device());
  return scheduler.add_noise(init, noise, timestep);
}

Tensor denoise(const DenoiseLoop& loop, Tensor latents) {
  int step = 0;
  for (double t : loop.timesteps) {
    const Tensor model_input = loop.scheduler.scale_model_input(latents, t);
    const Tensor noise_pred = loop.predict_noise(model_input, t, step);
    latents = loop.scheduler.step(noise_pred, t, latents, loop.rng);
    if (loop.adjust_latents) loop.adjust_latents(latents, step);
    ++step;
    if (loop.after_step && !loop.after_step(latents, step, t)) throw Cancelled();
  }
  check_finite(latents, "latents after step " + std::to_string(step));
  return latents;
}

Tensor classifier_free_guidance(const Tensor& model_output, float guidance_scale) {
  const int64_t half = model_output.dim(0) / 2;
  const Tensor uncond = model_output.narrow(0, 0, half), cond = model_output.narrow(0, half, half);
  return ops::evaluate(in(0) + guidance_scale * (in(1) - in(0)), {uncond, cond});
}

NoisePredictor with_guidance(NoisePredictor conditioned_unet, bool cfg, float guidance_scale) {
  if (!cfg) return conditioned_unet;
  return [unet = std::move(conditioned_unet), guidance_scale](const Tensor& x, double t, int step) {
    return classifier_free_guidance(unet(ops::concat(x, x, 0), t, step), guidance_scale);
  };
}

NoisePredictor unet_predictor(const UNet2DConditionModel& unet, Conditioning cond,
                              ResidualSource controls) {
  return [&unet, cond = std::move(cond), controls = std::move(controls)](const Tensor& x, double t,
                                                                         int step) {
    if (cond.split()) {  // [uncond x n; cond x n], each half with its own context
      const int64_t n = x.dim(0) / 2;
      const std::vector<double> ts(static_cast<size_t>(n), t);
      // SDXL's added conditions are batched [uncond x n; cond x n] too.
      const auto half = [&](int64_t begin) -> std::optional<UNetAddedConditions> {
        if (!cond.added) return std::nullopt;
        return UNetAddedConditions{cond.added->text_embeds.narrow(0, begin, n).contiguous(),
                                   cond.added->time_ids.narrow(0, begin, n).contiguous()};
      };
      const std::optional<UNetAddedConditions> added_uncond = half(0), added_cond = half(n);
      const Tensor uncond = unet.forward(x.narrow(0, 0, n).contiguous(), ts, cond.uncond_context,
                                         added_uncond ? &*added_uncond : nullptr);
      const Tensor conditioned = unet.forward(x.narrow(0, n, n).contiguous(), ts, cond.context,
                                              added_cond ? &*added_cond : nullptr);
      return ops::concat(uncond, conditioned, 0);
    }
    const std::vector<double> ts(static_cast<size_t>(x.dim(0)), t);
    const std::optional<UNetResiduals> residuals = controls ? controls(x, t, step) : std::nullopt;
    return unet.forward(x, ts, cond.context, cond.added.get(), residuals ? &*residuals : nullptr);
  };
}

XLPromptEmbeds encode_prompt_xl(const StableDiffusionModel* first, const ClipTokenizer& tokenizer_2,
                                const ClipTextModel& text_encoder_2, const std::string& text,
                                int clip_skip, Device device) {
  // text_encoder_2 runs to the end for its pooled output; its conditioning is an earlier layer.
  const ClipTextOutput out_2 = text_encoder_2.forward(token_ids(tokenizer_2, text, device), true);
  const auto states = static_cast<int>(out_2.hidden_states.size());
  if (clip_skip + 2 > states)
    throw ConfigError("clip skip " + std::to_string(clip_skip) + " exceeds text_encoder_2's " +
                      std::to_string(states - 1) + " layers");
  const Tensor& hidden_2 = out_2.hidden_states[static_cast<size_t>(states - 2 - clip_skip)];
  if (!first) return {hidden_2, out_2.text_embeds};
  const Tensor hidden_1 = first->text_encoder.hidden_state_from_end(
      token_ids(first->tokenizer, text, device), clip_skip + 2);
  return {ops::concat(hidden_1, hidden_2, 2), out_2.text_embeds};
}

Tensor add_time_ids(const std::array<int, 2>& original_size,
                    const std::array<int, 2>& crops_coords_top_left,
                    const std::array<int, 2>& target_size, Device device) {
  const float ids[6] = {float(original_size[0]),         float(original_size[1]),
                        float(crops_coords_top_left[0]), float(crops_coords_top_left[1]),
                        float(target_size[0]),           float(target_size[1])};
  return Tensor::from_floats(ids, {1, 6}).on(device);
}

Tensor aesthetic_time_ids(const std::array<int, 2>& original_size,
                          const std::array<int, 2>& crops_coords_top_left, float aesthetic_score,
                          Device device) {
  const float ids[5] = {float(original_size[0]), float(original_size[1]),
                        float(crops_coords_top_left[0]), float(crops_coords_top_left[1]),
                        aesthetic_score};
  return Tensor::from_floats(ids, {1, 5}).on(device);
}

namespace {

/// int(round(T - fraction * T)) as Python computes it (round half to even).
double handover_cutoff(double fraction, int num_train_timesteps) {
  const double t = static_cast<double>(num_train_timesteps);
  return static_cast<double>(static_cast<int64_t>(std::nearbyint(t - fraction * t)));
}

}  // namespace

std::vector<double> timesteps_until(const std::vector<double>& timesteps, double fraction,
                                    int num_train_timesteps) {
  const double cutoff = handover_cutoff(fraction, num_train_timesteps);
  const auto kept =
      std::count_if(timesteps.begin(), timesteps.end(), [&](double t) { return t >= cutoff; });
  return {timesteps.begin(), timesteps.begin() + kept};
}

std::vector<double> timesteps_from(Scheduler& scheduler, double fraction, int num_train_timesteps) {
  const double cutoff = handover_cutoff(fraction, num_train_timesteps);
  const std::vector<double>& all = scheduler.timesteps();
  auto count = std::count_if(all.begin(), all.end(), [&](double t) { return t < cutoff; });
  if (scheduler.order() == 2 && count % 2 == 0) ++count;
  const auto start = static_cast<int>(
      std::max<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(all.size()) - count, 0));
  scheduler.set_begin_index(start);
  return {all.begin() + start, all.end()};
}

DecodePlan plan_decode(const AutoencoderKL& vae, const std::string& mode, int tile_size,
                       const Shape& latents, size_t budget_bytes) {
  DecodePlan plan;
  plan.tiling.tile_size = tile_size;
  if (mode == "on") {
    plan.tiling.enabled = true;
  } else if (mode == "auto") {
    // The decoder's peak is a handful of float32 maps of its widest full-resolution level
    // (measured: 654 MiB for SD 1.5 at 512x512 = 5.1 maps of 128 channels); 6 leaves a margin.
    const VaeConfig& c = vae.config();
    const double f = c.downsample_factor();
    const double one_image = 6.0 * c.block_out_channels.front() * (double(latents[2]) * f) *
                             (double(latents[3]) * f) * sizeof(float);
    plan.one_image_at_a_time = one_image * double(latents[0]) > double(budget_bytes);
    plan.tiling.enabled = one_image > double(budget_bytes);
  }
  if (plan.tiling.enabled) vae.tile_size(plan.tiling);  // a bad tile size fails before decoding
  return plan;
}

Tensor decode_latents(const StableDiffusionModel& model, const Tensor& latents,
                      const DecodePlan& plan) {
  const float scaling = static_cast<float>(model.vae.config().scaling_factor);
  const Tensor scaled = ops::evaluate(in(0) * (1.f / scaling), {latents});
  Tensor decoded;
  if (plan.one_image_at_a_time && scaled.dim(0) > 1) {
    for (int64_t i = 0; i < scaled.dim(0); ++i) {
      const Tensor image = model.vae.decode(scaled.narrow(0, i, 1).contiguous(), plan.tiling);
      decoded = i == 0 ? image : ops::concat(decoded, image, 0);
    }
  } else {
    decoded = model.vae.decode(scaled, plan.tiling);
  }
  check_finite(decoded, "decoded image");
  return decoded;
}

}  // namespace diffuse::stages
