// StableDiffusionPipeline / StableDiffusionImg2ImgPipeline / StableDiffusionInpaintPipeline, step
// for step as diffusers runs them.
// Also StableDiffusionControlNetPipeline (o.controlnets). Pipelines that condition the UNet
// differently (SDXL) derive from it and replace encode_conditioning(); the schedule, latents,
// denoising loop and decoding stay shared.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "core/allocator.h"
#include "core/thread_pool.h"
#include "diffuse/diffuse.hpp"
#include "models/controlnet/controlnet_model.h"
#include "pipeline/controlnet_stage.h"
#include "pipeline/lora.h"
#include "pipeline/model_folder.h"
#include "pipeline/stages.h"
#include "pipeline/textual_inversion.h"
#include "random/random_source.h"
#include "schedulers/scheduler.h"

namespace diffuse {

class StableDiffusionPipeline : public Pipeline {
 public:
  /// Where and with what a pipeline runs: its device, its own thread pool and activation pool.
  struct Runtime {
    Device device;
    std::shared_ptr<ThreadPool> threads;
    std::shared_ptr<MemoryPool> memory;
    std::string warning;       // from choosing the device (a fallback), reported with every result
    LoadOptions load_options;  // as loaded: for the models it loads later (an SDXL refiner)
  };
  StableDiffusionPipeline(StableDiffusionModel model, double load_seconds, Runtime runtime);

  const ModelInfo& info() const override { return info_; }
  GenerationResult generate(const GenerateOptions& options,
                            const ProgressCallback& progress) override;
  std::vector<int64_t> tokenize(const std::string& text, size_t* token_count) const override;

  /// Between stages: the finished components' file pages are released, and the activation
  /// pool's cached blocks are freed.
  void end_of_stage(std::initializer_list<const WeightStore*> finished) const;

  /// Builds the scheduler the options ask for on top of the model's scheduler config.
  std::unique_ptr<Scheduler> make_scheduler_for(const GenerateOptions& o,
                                                std::string* sampler_name) const;

 protected:
  /// Encodes the prompts of `o`: the conditioning of a latent batch ordered [uncond x n, cond x n]
  /// when `cfg`, else [cond x n] (n = image_count).
  virtual stages::Conditioning encode_conditioning(const GenerateOptions& o, bool cfg) const;
  /// The weights encode_conditioning() reads beyond the first text encoder's (SDXL's second).
  virtual const WeightStore* other_text_encoder_weights() const { return nullptr; }
  /// Whether the UNet takes GenerateOptions' size conditions (SDXL); otherwise setting them is
  /// reported as a warning.
  virtual bool size_conditioned() const { return false; }
  /// Whether A1111 prompt syntax applies GenerateOptions::clip_skip (A1111 does not on SDXL).
  virtual bool a1111_applies_clip_skip() const { return true; }
  /// Whether the UNet takes GenerateOptions' aesthetic scores (SDXL refiners).
  virtual bool aesthetic_conditioned() const { return false; }
  /// Refuses options this pipeline does not implement (ConfigError naming the option); called by
  /// resolve(), before any model runs.
  virtual void check_supported(const GenerateOptions&) const {}
  /// img2img's strength when unset (diffusers' pipelines differ: SD 0.8, SDXL 0.3).
  virtual float default_img2img_strength() const { return 0.8f; }
  /// Inpainting's strength when unset (StableDiffusionInpaintPipeline 1, the SDXL one 0.9999).
  virtual float default_inpaint_strength() const { return 1.f; }
  /// A pass after the denoising loop over its latents (hires fix, SDXL's refiner), and whose VAE
  /// decodes the result.
  struct FinishingPass {
    int evaluations = 0;  // model evaluations it reports progress for
    std::function<Tensor(const Tensor& latents, RandomSource& rng, stages::StepHook report)> run;
    const StableDiffusionModel* decoder = nullptr;  // null: this pipeline's model
  };
  /// The finishing pass `o` asks for (`run` empty: none); it may cut the first pass's
  /// `timesteps` where it takes over. Runs after the conditioning is encoded.
  virtual FinishingPass plan_finishing_pass(const GenerateOptions& o,
                                            const stages::Conditioning& cond, bool cfg,
                                            std::vector<double>& timesteps);
  /// The conditioning of a hires fix's second pass at width x height (SDXL's size conditions
  /// follow the pass size); by default the first pass's.
  virtual stages::Conditioning hires_conditioning(const GenerateOptions& o,
                                                  const stages::Conditioning& first_pass, bool cfg,
                                                  int width, int height) const {
    (void)o, (void)cfg, (void)width, (void)height;
    return first_pass;
  }
  /// Builds the text encoders beyond the first (SDXL's text_encoder_2) with `loras` merged
  /// (counting per LoRA the modules that matched) and `embeddings` added; returns what installs
  /// them (run only once every component is built).
  virtual std::function<void()> adapters_for_other_encoders(
      const std::vector<LoraApplication>& loras, const std::vector<std::string>& embeddings,
      std::vector<size_t>& matched) {
    (void)embeddings;
    matched.assign(loras.size(), 0);
    return [] {};
  }
  /// Which vectors of an embedding file model().text_encoder reads.
  virtual EmbeddingPart first_encoder_embedding_part() const { return EmbeddingPart::single; }

  /// Makes the UNet and text encoder(s) those of the base weights with `loras` merged and the
  /// textual-inversion `embeddings` added (tokenizer and token table), unless they already are.
  /// ConfigError for a LoRA none of whose modules is in this model (a warning when some are not)
  /// or an embedding of another width; nothing changes when one fails.
  void use_adapters(const std::vector<LoraSpec>& loras, const std::vector<std::string>& embeddings,
                    std::vector<std::string>& warnings);
  const StableDiffusionModel& model() const { return model_; }
  Device device() const { return runtime_.device; }
  const Runtime& runtime() const { return runtime_; }

 private:
  /// Sets the scheduler's schedule; img2img cuts it by strength (and sets the begin index).
  std::vector<double> timesteps_for(const GenerateOptions& o, Scheduler& scheduler) const;
  /// Where the denoising loop starts and what runs in it.
  struct Start {
    Tensor latents;               // noise (txt2img), the noised image (img2img, inpainting)
    stages::NoisePredictor unet;  // the conditioned UNet (+ the mask channels of 9-channel models)
    stages::LatentHook adjust;    // inpainting with a 4-channel model: keep the unmasked region
  };
  Start prepare(const GenerateOptions& o, Scheduler& scheduler, RandomSource& rng,
                const std::vector<double>& timesteps, stages::NoisePredictor unet) const;
  /// The mask options against each other and the UNet (a 9-channel UNet needs a mask).
  void check_mask(const GenerateOptions& o) const;
  /// The hires fix options (after the size is resolved).
  void check_hires(const GenerateOptions& o) const;
  /// The second pass of a hires fix: its scheduler, cut schedule and size.
  struct HiresPass {
    std::unique_ptr<Scheduler> scheduler;
    std::vector<double> timesteps;
    int width = 0, height = 0;
  };
  HiresPass plan_hires(const GenerateOptions& o) const;
  /// Upscales the first pass's `latents` and refines them (reporting through `report`), with the
  /// ControlNets' residuals `controls` (none: empty).
  Tensor run_hires(const GenerateOptions& o, const stages::Conditioning& cond,
                   const stages::ResidualSource& controls, bool cfg, HiresPass& pass,
                   const Tensor& latents, stages::StepHook report) const;
  /// diffusers' get_timesteps: the scheduler's schedule (already set for `steps`) cut by
  /// `strength`, with the begin index set.
  std::vector<double> cut_schedule(Scheduler& scheduler, int steps, float strength) const;
  /// The ControlNet options; the size defaults to the first control image's.
  void check_controlnets(GenerateOptions& o) const;
  /// The residual source of o.controlnets for a run of `evaluations` UNet calls (none: empty).
  /// The control images are resized to width x height (0: the output size).
  stages::ResidualSource controls_for(const GenerateOptions& o, const stages::Conditioning& cond,
                                      bool cfg, int evaluations, int width = 0, int height = 0);
  /// The ControlNet at `path` (a folder or a single file), loaded on first use and kept.
  std::shared_ptr<const ControlNetModel> controlnet(const std::string& path);
  Progress progress_report(const Tensor& latents, int step, int total, double t, double elapsed,
                           bool preview) const;
  /// Validates and fills defaults (size, scheduler) in place; ConfigError naming the option.
  void resolve(GenerateOptions& o) const;
  /// Warnings about the prompts (unbalanced A1111 brackets, a syntax the model does not read).
  void warn_about_prompts(const GenerateOptions& o, std::vector<std::string>& warnings) const;
  /// The aesthetic scores and the refiner options (SDXL base models only).
  void check_refinement(const GenerateOptions& o) const;
  /// Checks the SDXL size conditions; fills their defaults when size_conditioned().
  void resolve_size_conditions(GenerateOptions& o) const;

  StableDiffusionModel model_;
  // As loaded: embeddings are added to copies.
  ClipTokenizer base_tokenizer_;
  ClipTextConfig base_text_encoder_config_;
  ModelInfo info_;
  double load_seconds_ = 0;
  Runtime runtime_;
  std::vector<LoraSpec> applied_loras_;  // merged into model_'s UNet and text encoder(s) now
  std::vector<std::string> applied_embeddings_;  // added to model_'s tokenizer and text encoder
  std::map<std::string, std::shared_ptr<const ControlNetModel>> controlnets_;  // by path
  std::mutex generate_mu_;
};

}  // namespace diffuse
