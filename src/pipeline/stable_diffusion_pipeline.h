// StableDiffusionPipeline / StableDiffusionImg2ImgPipeline, step for step as diffusers runs them.
#pragma once

#include <memory>

#include "diffuse/diffuse.hpp"
#include "pipeline/model_folder.h"
#include "schedulers/scheduler.h"

namespace diffuse {

class StableDiffusionPipeline final : public Pipeline {
 public:
  explicit StableDiffusionPipeline(StableDiffusionModel model, double load_seconds);

  const ModelInfo& info() const override { return info_; }
  GenerationResult generate(const GenerateOptions& options,
                            const ProgressCallback& progress) override;
  std::vector<int64_t> tokenize(const std::string& text, size_t* token_count) const override;

  /// Builds the scheduler the options ask for on top of the model's scheduler config.
  std::unique_ptr<Scheduler> make_scheduler_for(const GenerateOptions& o,
                                                std::string* sampler_name) const;

 private:
  /// [B, 77, H] conditioning for one prompt, repeated `copies` times.
  Tensor encode_prompt(const std::string& text, int clip_skip, int copies) const;
  /// Validates and fills defaults (size, scheduler) in place; ConfigError naming the option.
  void resolve(GenerateOptions& o) const;

  StableDiffusionModel model_;
  ModelInfo info_;
  double load_seconds_ = 0;
};

}  // namespace diffuse
