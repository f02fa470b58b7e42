#include "pipeline/stable_diffusion_xl_pipeline.h"

#include "backend/ops.h"

namespace diffuse {

namespace {

std::array<int, 2> hw(const SizeHW& s) {
  return {s.height, s.width};
}

}  // namespace

StableDiffusionXLPipeline::StableDiffusionXLPipeline(StableDiffusionXLModel model,
                                                     double load_seconds, Runtime runtime)
    : StableDiffusionPipeline(std::move(model.base), load_seconds, std::move(runtime)),
      tokenizer_2_(std::move(model.tokenizer_2)),
      text_encoder_2_(std::move(model.text_encoder_2)),
      text_encoder_2_weights_(std::move(model.text_encoder_2_weights)),
      force_zeros_for_empty_prompt_(model.force_zeros_for_empty_prompt) {}

std::function<void()> StableDiffusionXLPipeline::loras_for_other_encoders(
    const std::vector<LoraApplication>& loras, std::vector<size_t>& matched) {
  auto encoder = std::make_shared<ClipTextModel>(ClipTextModel::from_weights(
      text_encoder_2_.config(),
      apply_loras(*text_encoder_2_weights_, "text_encoder_2", loras, matched),
      /*with_projection=*/true));
  return [this, encoder] { text_encoder_2_ = std::move(*encoder); };
}

void StableDiffusionXLPipeline::check_supported(const GenerateOptions& o) const {
  if (o.init_image)
    throw ConfigError("image-to-image with SDXL (" + model().name + ") is not supported yet");
  if (o.hires) throw ConfigError("hires fix with SDXL (" + model().name + ") is not supported yet");
  if (!o.embeddings.empty())
    throw ConfigError("textual-inversion embeddings with SDXL (" + model().name +
                      ") are not supported yet");
  if (!o.controlnets.empty())
    throw ConfigError("ControlNet with SDXL (" + model().name + ") is not supported yet");
}

stages::Conditioning StableDiffusionXLPipeline::encode_conditioning(const GenerateOptions& o,
                                                                    bool cfg) const {
  const Device dev = device();
  const int n = o.image_count;
  const stages::XLPromptEmbeds cond =
      stages::encode_prompt_xl(model(), tokenizer_2_, text_encoder_2_, o.prompt, o.clip_skip, dev);
  // resolve() filled the size conditions' defaults.
  const Tensor time_ids = stages::add_time_ids(
      hw(*o.original_size), {o.crop_coords->top, o.crop_coords->left}, hw(*o.target_size), dev);
  auto added = std::make_shared<UNetAddedConditions>();
  Tensor context = ops::repeat_batch(cond.prompt_embeds, n);
  added->text_embeds = ops::repeat_batch(cond.pooled_prompt_embeds, n);
  added->time_ids = ops::repeat_batch(time_ids, n);
  if (cfg) {
    stages::XLPromptEmbeds uncond;
    if (!o.negative_prompt && force_zeros_for_empty_prompt_) {
      uncond.prompt_embeds = Tensor::zeros(cond.prompt_embeds.shape()).on(dev);
      uncond.pooled_prompt_embeds = Tensor::zeros(cond.pooled_prompt_embeds.shape()).on(dev);
    } else {
      uncond = stages::encode_prompt_xl(model(), tokenizer_2_, text_encoder_2_,
                                        o.negative_prompt.value_or(""), o.clip_skip, dev);
    }
    // diffusers' negative_crops_coords_top_left defaults to (0, 0) and we pass target_size as
    // negative_target_size; without negative_original_size both halves share the time ids.
    const Tensor negative_time_ids =
        o.negative_original_size
            ? stages::add_time_ids(hw(*o.negative_original_size), {0, 0}, hw(*o.target_size), dev)
            : time_ids;
    context = ops::concat(ops::repeat_batch(uncond.prompt_embeds, n), context, 0);
    added->text_embeds =
        ops::concat(ops::repeat_batch(uncond.pooled_prompt_embeds, n), added->text_embeds, 0);
    // diffusers tiles [negative, positive] time ids image_count times, (uncond, cond, uncond,
    // ...), while the embeddings are [uncond x n, cond x n]: with several images and a distinct
    // negative_original_size, the halves pair up as diffusers pairs them, not as intended.
    added->time_ids = ops::repeat_batch(ops::concat(negative_time_ids, time_ids, 0), 2 * n);
  }
  return {context, added};
}

}  // namespace diffuse
