// StableDiffusionXLPipeline (text-to-image with the base model), step for step as diffusers runs
// it. Everything but the conditioning is StableDiffusionPipeline's: SDXL encodes the prompt with
// two text encoders and adds the pooled text embedding and the size micro-conditioning
// (add_time_ids) to every UNet call.
#pragma once

#include "pipeline/model_folder.h"
#include "pipeline/stable_diffusion_pipeline.h"

namespace diffuse {

class StableDiffusionXLPipeline final : public StableDiffusionPipeline {
 public:
  StableDiffusionXLPipeline(StableDiffusionXLModel model, double load_seconds, Runtime runtime);

 protected:
  stages::Conditioning encode_conditioning(const GenerateOptions& o, bool cfg) const override;
  bool size_conditioned() const override { return true; }
  /// StableDiffusionXLImg2ImgPipeline (aesthetic scores, denoising_start) is not implemented.
  void check_supported(const GenerateOptions& o) const override;
  std::function<void()> loras_for_other_encoders(const std::vector<LoraApplication>& loras,
                                                 std::vector<size_t>& matched) override;

 private:
  // The rest of StableDiffusionXLModel; its base is model().
  ClipTokenizer tokenizer_2_;
  ClipTextModel text_encoder_2_;
  std::shared_ptr<const WeightStore> text_encoder_2_weights_;  // its base weights
  bool force_zeros_for_empty_prompt_ = true;
};

}  // namespace diffuse
