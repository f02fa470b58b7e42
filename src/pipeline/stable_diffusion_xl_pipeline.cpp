#include "pipeline/stable_diffusion_xl_pipeline.h"

#include <filesystem>

#include "backend/ops.h"
#include "pipeline/a1111_prompt_encoding.h"

namespace diffuse {

namespace {

std::array<int, 2> hw(const SizeHW& s) {
  return {s.height, s.width};
}

// diffusers' StableDiffusionXLImg2ImgPipeline defaults.
constexpr float kAestheticScore = 6.f, kNegativeAestheticScore = 2.5f;

}  // namespace

StableDiffusionXLPipeline::StableDiffusionXLPipeline(StableDiffusionXLModel model,
                                                     double load_seconds, Runtime runtime)
    : StableDiffusionPipeline(std::move(model.base), load_seconds, std::move(runtime)),
      tokenizer_2_(std::move(model.tokenizer_2)),
      text_encoder_2_(std::move(model.text_encoder_2)),
      text_encoder_2_weights_(std::move(model.text_encoder_2_weights)),
      force_zeros_for_empty_prompt_(model.force_zeros_for_empty_prompt),
      requires_aesthetics_score_(model.requires_aesthetics_score),
      text_encoder_2_only_(model.text_encoder_2_only),
      base_tokenizer_2_(tokenizer_2_),
      base_text_encoder_2_config_(text_encoder_2_.config()) {}

std::function<void()> StableDiffusionXLPipeline::adapters_for_other_encoders(
    const std::vector<LoraApplication>& loras, const std::vector<std::string>& embeddings,
    std::vector<size_t>& matched) {
  if (text_encoder_2_only_) {  // model()'s text encoder is text_encoder_2
    matched.assign(loras.size(), 0);
    return [] {};
  }
  WeightStore weights = apply_loras(*text_encoder_2_weights_, "text_encoder_2", loras, matched);
  ClipTextConfig config = base_text_encoder_2_config_;
  auto tokenizer = std::make_shared<ClipTokenizer>(base_tokenizer_2_);
  add_embeddings(embeddings, EmbeddingPart::clip_g, weights, config, *tokenizer);
  auto encoder = std::make_shared<ClipTextModel>(
      ClipTextModel::from_weights(config, weights, /*with_projection=*/true));
  return [this, encoder, tokenizer] {
    text_encoder_2_ = std::move(*encoder);
    tokenizer_2_ = std::move(*tokenizer);
  };
}

void StableDiffusionXLPipeline::check_supported(const GenerateOptions& o) const {
  const std::string& name = model().name;
  if (requires_aesthetics_score_ && !o.init_image)
    throw ConfigError(name +
                      " is an SDXL refiner: it refines an image (give it one) or, as the refiner "
                      "of an SDXL base model, the base's latents; it cannot start from noise");
  if (o.hires && !o.refiner.empty())
    throw ConfigError("hires fix together with a refiner is not supported yet (" + name +
                      "): run the refiner on the hires image as image-to-image");
  if (text_encoder_2_only_ && !o.loras.empty())
    throw ConfigError("LoRAs with an SDXL refiner (" + name + ") are not supported yet");
}

std::pair<Tensor, Tensor> StableDiffusionXLPipeline::time_ids(const GenerateOptions& o,
                                                              bool img2img) const {
  const Device dev = device();
  // resolve() filled the size conditions' defaults.
  const std::array<int, 2> original = hw(*o.original_size), target = hw(*o.target_size),
                           crop = {o.crop_coords->top, o.crop_coords->left};
  const std::array<int, 2> negative_original =
      o.negative_original_size ? hw(*o.negative_original_size) : original;
  if (requires_aesthetics_score_)  // negative_crops_coords_top_left defaults to (0, 0)
    return {stages::aesthetic_time_ids(original, crop, o.aesthetic_score.value_or(kAestheticScore),
                                       dev),
            stages::aesthetic_time_ids(negative_original, {0, 0},
                                       o.negative_aesthetic_score.value_or(kNegativeAestheticScore),
                                       dev)};
  const Tensor positive = stages::add_time_ids(original, crop, target, dev);
  // diffusers' negative_target_size defaults to target_size. The img2img pipeline pairs the
  // negative original size with the prompt's crop; the text-to-image one with (0, 0), and only
  // when a negative original size is given.
  if (img2img) return {positive, stages::add_time_ids(negative_original, crop, target, dev)};
  if (!o.negative_original_size) return {positive, positive};
  return {positive, stages::add_time_ids(negative_original, {0, 0}, target, dev)};
}

stages::Conditioning StableDiffusionXLPipeline::conditioning(const GenerateOptions& o, bool cfg,
                                                             bool img2img_order) const {
  const Device dev = device();
  const int n = o.image_count;
  const StableDiffusionModel* first = text_encoder_2_only_ ? nullptr : &model();
  const bool a1111 = o.prompt_syntax == "a1111";
  const auto encode = [&](const std::string& text) {
    return a1111 ? stages::encode_prompt_xl_a1111(first, tokenizer_2_, text_encoder_2_, text, dev)
                 : stages::encode_prompt_xl(first, tokenizer_2_, text_encoder_2_, text, o.clip_skip,
                                            dev);
  };
  const stages::XLPromptEmbeds cond = encode(o.prompt);
  const auto [positive_ids, negative_ids] = time_ids(o, img2img_order);
  auto added = std::make_shared<UNetAddedConditions>();
  Tensor context = ops::repeat_batch(cond.prompt_embeds, n);
  added->text_embeds = ops::repeat_batch(cond.pooled_prompt_embeds, n);
  added->time_ids = ops::repeat_batch(positive_ids, n);
  if (!cfg) return {context, added, {}};
  stages::XLPromptEmbeds uncond;
  // diffusers zeroes an absent negative prompt (force_zeros_for_empty_prompt); A1111 zeroes an
  // empty one on every SDXL model (sd_models_xl's force_zero_negative_prompt).
  const bool zeros = a1111 ? o.negative_prompt.value_or("").empty()
                           : !o.negative_prompt && force_zeros_for_empty_prompt_;
  if (zeros) {
    uncond.prompt_embeds = Tensor::zeros(cond.prompt_embeds.shape()).on(dev);
    uncond.pooled_prompt_embeds = Tensor::zeros(cond.pooled_prompt_embeds.shape()).on(dev);
  } else {
    uncond = encode(o.negative_prompt.value_or(""));
  }
  added->text_embeds =
      ops::concat(ops::repeat_batch(uncond.pooled_prompt_embeds, n), added->text_embeds, 0);
  // The img2img pipeline batches the time ids as the embeddings. The text-to-image one tiles
  // [negative, positive] image_count times (uncond, cond, uncond, ...) while the embeddings are
  // [uncond x n, cond x n]: with several images and a distinct negative_original_size, the halves
  // pair up as diffusers pairs them, not as intended.
  added->time_ids = img2img_order
                        ? ops::concat(ops::repeat_batch(negative_ids, n), added->time_ids, 0)
                        : ops::repeat_batch(ops::concat(negative_ids, positive_ids, 0),
                                            2 * static_cast<int64_t>(n));
  const Tensor uncond_context = ops::repeat_batch(uncond.prompt_embeds, n);
  // A1111 prompts of different chunk counts guide each half on its own.
  if (uncond_context.dim(1) != context.dim(1)) return {context, added, uncond_context};
  return {ops::concat(uncond_context, context, 0), added, {}};
}

stages::Conditioning StableDiffusionXLPipeline::encode_conditioning(const GenerateOptions& o,
                                                                    bool cfg) const {
  return conditioning(o, cfg, o.init_image.has_value());
}

stages::Conditioning StableDiffusionXLPipeline::hires_conditioning(const GenerateOptions& o,
                                                                   const stages::Conditioning&,
                                                                   bool cfg, int width,
                                                                   int height) const {
  // A1111 conditions the second pass on its own size (original and target size = the hires
  // size, crop (0, 0)); sizes the caller set (not resolve()'s defaults) are kept.
  GenerateOptions pass = o;
  const SizeHW first{o.height, o.width}, hires{height, width};
  const auto follows_pass = [&](std::optional<SizeHW>& s) {
    if (s && s->height == first.height && s->width == first.width) s = hires;
  };
  follows_pass(pass.original_size);
  follows_pass(pass.target_size);
  return conditioning(pass, cfg, /*img2img_order=*/true);
}

StableDiffusionPipeline::FinishingPass StableDiffusionXLPipeline::plan_finishing_pass(
    const GenerateOptions& o, const stages::Conditioning& cond, bool cfg,
    std::vector<double>& timesteps) {
  if (o.refiner.empty())
    return StableDiffusionPipeline::plan_finishing_pass(o, cond, cfg, timesteps);
  const std::shared_ptr<StableDiffusionXLPipeline> expert = refiner(o.refiner);
  // The prompt's embedding tokens mean the same to the refiner's encoder (clip_g).
  std::vector<std::string> ignored;
  expert->use_adapters({}, o.embeddings, ignored);
  timesteps = stages::timesteps_until(timesteps, o.high_noise_frac,
                                      model().scheduler_config.value("num_train_timesteps", 1000));
  FinishingPass pass = expert->plan_refinement(o, o.high_noise_frac);
  // The refiner stays loaded (refiners_) while the pass runs.
  return pass;
}

StableDiffusionPipeline::FinishingPass StableDiffusionXLPipeline::plan_refinement(
    const GenerateOptions& o, double fraction) const {
  std::shared_ptr<Scheduler> scheduler = make_scheduler_for(o, nullptr);
  scheduler->set_timesteps(o.steps);
  std::vector<double> timesteps = stages::timesteps_from(
      *scheduler, fraction, model().scheduler_config.value("num_train_timesteps", 1000));
  FinishingPass pass;
  pass.evaluations = static_cast<int>(timesteps.size());
  pass.decoder = &model();
  // StableDiffusionXLImg2ImgPipeline(image=latents, denoising_start=fraction): the latents are
  // taken as they are (no noise added), the prompts encoded with the refiner's encoder.
  pass.run = [this, &o, scheduler, timesteps = std::move(timesteps)](
                 const Tensor& latents, RandomSource& rng, stages::StepHook report) {
    const bool cfg = o.guidance_scale > 1.f;
    const stages::Conditioning cond = conditioning(o, cfg, /*img2img_order=*/true);
    stages::DenoiseLoop loop{
        *scheduler,
        timesteps,
        stages::with_guidance(stages::unet_predictor(model().unet, cond), cfg, o.guidance_scale),
        &rng,
        std::move(report),
        {}};
    return stages::denoise(loop, latents);
  };
  return pass;
}

std::shared_ptr<StableDiffusionXLPipeline> StableDiffusionXLPipeline::refiner(
    const std::string& path) {
  const auto it = refiners_.find(path);
  if (it != refiners_.end()) return it->second;
  if (!std::filesystem::is_directory(path))
    throw FileError("refiner " + path + ": folder not found (a refiner is a diffusers folder)");
  if (!is_stable_diffusion_xl_folder(path))
    throw ConfigError("refiner " + path +
                      ": not an SDXL model folder (its model_index.json names "
                      "StableDiffusionXLImg2ImgPipeline or StableDiffusionXLPipeline)");
  Runtime shared{device(), runtime().threads, runtime().memory, {}, runtime().load_options};
  auto expert = std::make_shared<StableDiffusionXLPipeline>(
      load_stable_diffusion_xl_folder(path, runtime().load_options), 0.0, std::move(shared));
  const StableDiffusionModel& mine = model();
  const StableDiffusionModel& theirs = expert->model();
  if (theirs.unet.config().in_channels != mine.unet.config().out_channels ||
      theirs.vae_scale_factor() != mine.vae_scale_factor())
    throw ConfigError("refiner " + path + ": its UNet takes " +
                      std::to_string(theirs.unet.config().in_channels) + "-channel latents, but " +
                      mine.name + " makes " + std::to_string(mine.unet.config().out_channels) +
                      "-channel ones");
  refiners_.emplace(path, expert);
  return expert;
}

}  // namespace diffuse
