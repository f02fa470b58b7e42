// StableDiffusionXLPipeline (text-to-image) and StableDiffusionXLImg2ImgPipeline (image-to-image,
// SDXL's refiner, the refiner's half of the ensemble of experts), step for step as diffusers runs
// them. Everything but the conditioning is StableDiffusionPipeline's: SDXL encodes the prompt with
// two text encoders (a refiner with the second only) and adds the pooled text embedding and the
// micro-conditioning (add_time_ids: sizes and crop, or a refiner's aesthetic score) to every UNet
// call.
#pragma once

#include <map>
#include <memory>

#include "pipeline/model_folder.h"
#include "pipeline/stable_diffusion_pipeline.h"

namespace diffuse {

class StableDiffusionXLPipeline final : public StableDiffusionPipeline {
 public:
  StableDiffusionXLPipeline(StableDiffusionXLModel model, double load_seconds, Runtime runtime);

 protected:
  stages::Conditioning encode_conditioning(const GenerateOptions& o, bool cfg) const override;
  const WeightStore* other_text_encoder_weights() const override {
    return text_encoder_2_only_ ? nullptr : text_encoder_2_weights_.get();
  }
  bool size_conditioned() const override { return true; }
  bool a1111_applies_clip_skip() const override { return false; }
  bool aesthetic_conditioned() const override { return requires_aesthetics_score_; }
  float default_img2img_strength() const override { return 0.3f; }
  void check_supported(const GenerateOptions& o) const override;
  FinishingPass plan_finishing_pass(const GenerateOptions& o, const stages::Conditioning& cond,
                                    bool cfg, std::vector<double>& timesteps) override;
  float default_inpaint_strength() const override { return 0.9999f; }
  stages::Conditioning hires_conditioning(const GenerateOptions& o,
                                          const stages::Conditioning& first_pass, bool cfg,
                                          int width, int height) const override;
  std::function<void()> adapters_for_other_encoders(const std::vector<LoraApplication>& loras,
                                                    const std::vector<std::string>& embeddings,
                                                    std::vector<size_t>& matched) override;
  EmbeddingPart first_encoder_embedding_part() const override {
    return text_encoder_2_only_ ? EmbeddingPart::clip_g : EmbeddingPart::clip_l;
  }

 private:
  /// The conditioning of `o`; `img2img_order`: the time ids batched as
  /// StableDiffusionXLImg2ImgPipeline batches them ([uncond x n, cond x n], as the embeddings)
  /// rather than as StableDiffusionXLPipeline tiles them.
  stages::Conditioning conditioning(const GenerateOptions& o, bool cfg, bool img2img_order) const;
  /// The positive and negative time ids of `o` ([1, 5] or [1, 6] each).
  std::pair<Tensor, Tensor> time_ids(const GenerateOptions& o, bool img2img) const;
  /// The refiner at `path`, loaded on first use (with this pipeline's load options and runtime)
  /// and kept; ConfigError when it cannot take this model's latents.
  std::shared_ptr<StableDiffusionXLPipeline> refiner(const std::string& path);
  /// The refiner's half of an ensemble: its scheduler and schedule from `fraction` on, and what
  /// runs it on the base's latents.
  FinishingPass plan_refinement(const GenerateOptions& o, double fraction) const;

  // The rest of StableDiffusionXLModel; its base is model().
  ClipTokenizer tokenizer_2_;
  ClipTextModel text_encoder_2_;
  std::shared_ptr<const WeightStore> text_encoder_2_weights_;  // its base weights
  bool force_zeros_for_empty_prompt_ = true;
  bool requires_aesthetics_score_ = false;
  bool text_encoder_2_only_ = false;
  // As loaded: LoRAs and embeddings are applied to copies.
  ClipTokenizer base_tokenizer_2_;
  ClipTextConfig base_text_encoder_2_config_;
  std::map<std::string, std::shared_ptr<StableDiffusionXLPipeline>> refiners_;  // by path
};

}  // namespace diffuse
