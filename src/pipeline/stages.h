// The stages every Stable Diffusion pipeline is composed of, as diffusers' pipelines share them:
// encode the prompt, prepare the initial latents, run the denoising loop (with hooks for what
// conditions each step), decode. txt2img and img2img are compositions of these; inpainting,
// ControlNet, SDXL and hires fix add hooks and stages rather than growing one generate().
//
// All tensor math goes through ops:: on the device of the tensors passed in.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diffuse/diffuse.hpp"
#include "pipeline/model_folder.h"
#include "random/random_source.h"
#include "schedulers/scheduler.h"

namespace diffuse::stages {

// ---- prompt
// ---------------------------------------------------------------------------------------
/// The text encoder's conditioning for `text` ([1, L, H], CLIP skipping the last `clip_skip`
/// layers), computed on `device`.
Tensor encode_prompt(const StableDiffusionModel& model, const std::string& text, int clip_skip,
                     Device device);

// ---- images
// ---------------------------------------------------------------------------------------
/// diffusers' VaeImageProcessor.preprocess: HWC in [0, 1] -> [1, 3, H, W] in [-1, 1] on `device`.
Tensor image_to_tensor(const Image& image, Device device);
/// VaeImageProcessor.postprocess: [B, 3, H, W] in [-1, 1] -> images in [0, 1] (x / 2 + 0.5,
/// clamped).
std::vector<Image> tensor_to_images(const Tensor& decoded);
/// PIL's `image.resize((width, height), Image.LANCZOS)` on the 8-bit image (to_rgb8 is exact for
/// images read from 8-bit PNGs), as diffusers' VaeImageProcessor and A1111 resize.
Image resize_image(const Image& image, int width, int height);
/// NumericError naming `what` unless every element is finite.
void check_finite(const Tensor& t, const std::string& what);

// ---- latents
// --------------------------------------------------------------------------------------
/// txt2img: randn(shape) scaled by the scheduler's init_noise_sigma (prepare_latents).
Tensor initial_noise(RandomSource& rng, const Shape& shape, double init_noise_sigma, Device device);
/// The scaled VAE posterior sample of `image` (latent_dist.sample: mean + exp(logvar / 2) * randn,
/// times the VAE's scaling factor), drawing one randn of the latent shape.
Tensor vae_posterior_sample(const StableDiffusionModel& model, const Tensor& image,
                            RandomSource& rng);
/// img2img: vae_posterior_sample of `image`, for each of `copies` images, noised by the scheduler
/// to `timestep` with fresh noise (drawn after the posterior's, as diffusers' generator is
/// consumed).
Tensor encode_and_noise(const StableDiffusionModel& model, const Tensor& image, int copies,
                        Scheduler& scheduler, double timestep, RandomSource& rng);

// ---- denoising loop
// -------------------------------------------------------------------------------
/// Predicts the noise (or v) for `latents` at timestep `t`, model evaluation `step` (0-based): the
/// model call plus whatever conditions it (classifier-free guidance, ControlNet residuals,
/// inpainting channels).
using NoisePredictor = std::function<Tensor(const Tensor& latents, double t, int step)>;

/// What conditions every UNet (and ControlNet) call of a run, batch-ordered [uncond x n, cond x n]
/// under classifier-free guidance, else [cond x n].
struct Conditioning {
  Tensor context;                                    // encoder_hidden_states
  std::shared_ptr<const UNetAddedConditions> added;  // SDXL's text_time conditions, else null
  /// Set when the unconditional half's context is of another length than the conditional half's
  /// (A1111 prompts of different chunk counts): the unconditional half's, `context` then holding
  /// the conditional half only. The UNet runs on each half on its own.
  Tensor uncond_context;
  bool split() const { return uncond_context.ndim() > 0; }
};
/// ControlNet residuals for the UNet call on `x` at evaluation `step` (nullopt: none this step).
using ResidualSource =
    std::function<std::optional<UNetResiduals>(const Tensor& x, double t, int step)>;
/// The UNet conditioned on `cond` (called with the whole batch), plus the residuals of `controls`
/// when given.
NoisePredictor unet_predictor(const UNet2DConditionModel& unet, Conditioning cond,
                              ResidualSource controls = {});
/// Called after each scheduler step with the new latents; may replace them (inpainting blends the
/// known region back in). Returns false to stop (cancellation).
using StepHook = std::function<bool(Tensor& latents, int step, double t)>;
/// Adjusts the latents after scheduler step `step` (0-based), before progress is reported
/// (inpainting keeps the known region).
using LatentHook = std::function<void(Tensor& latents, int step)>;

struct DenoiseLoop {
  Scheduler& scheduler;
  std::vector<double> timesteps;
  NoisePredictor predict_noise;
  RandomSource* rng = nullptr;  // for stochastic schedulers
  StepHook after_step;          // optional
  LatentHook adjust_latents;    // optional, runs before after_step
};
/// Runs the loop from `latents`; throws Cancelled when after_step returns false.
Tensor denoise(const DenoiseLoop& loop, Tensor latents);

/// uncond + g * (cond - uncond) from a model output over the batch [uncond; cond].
Tensor classifier_free_guidance(const Tensor& model_output, float guidance_scale);

/// The noise predictor of a pipeline: `conditioned_unet` (the UNet with its text conditioning,
/// taking the whole batch) called on [latents; latents] and guided when `cfg`, else on latents.
NoisePredictor with_guidance(NoisePredictor conditioned_unet, bool cfg, float guidance_scale);

// ---- SDXL
// -----------------------------------------------------------------------------------------
struct XLPromptEmbeds {
  Tensor prompt_embeds;         // [1, L, H1 + H2]: both encoders' hidden states, side by side
  Tensor pooled_prompt_embeds;  // [1, projection_dim]: text_encoder_2's projected pooled output
};
/// StableDiffusionXLPipeline.encode_prompt for one text (used for both encoders, as prompt_2
/// defaults to prompt): each encoder's hidden_states[-(clip_skip + 2)] concatenated on the last
/// axis, and the pooled output of text_encoder_2.
/// `model` holds the first tokenizer and encoder; without one (`first` null: SDXL's refiner),
/// text_encoder_2's hidden state alone.
XLPromptEmbeds encode_prompt_xl(const StableDiffusionModel* first, const ClipTokenizer& tokenizer_2,
                                const ClipTextModel& text_encoder_2, const std::string& text,
                                int clip_skip, Device device);
/// _get_add_time_ids: [1, 6] F32 = original (h, w), crop (top, left), target (h, w).
Tensor add_time_ids(const std::array<int, 2>& original_size,
                    const std::array<int, 2>& crops_coords_top_left,
                    const std::array<int, 2>& target_size, Device device);
/// _get_add_time_ids with requires_aesthetics_score (refiners): [1, 5] F32 = original (h, w), crop
/// (top, left), aesthetic score.
Tensor aesthetic_time_ids(const std::array<int, 2>& original_size,
                          const std::array<int, 2>& crops_coords_top_left, float aesthetic_score,
                          Device device);

// ---- ensemble of experts (SDXL base + refiner)
// --------------------------------------------------------------
/// diffusers' denoising_end: the leading timesteps at or above the cutoff
/// round(T - fraction * T) (T = num_train_timesteps), where the base hands over.
std::vector<double> timesteps_until(const std::vector<double>& timesteps, double fraction,
                                    int num_train_timesteps);
/// diffusers' get_timesteps with denoising_start: the trailing timesteps below the same cutoff
/// (one more for a second-order scheduler when the count is even, so that the last step is
/// whole), with the scheduler's begin index set where they start.
std::vector<double> timesteps_from(Scheduler& scheduler, double fraction, int num_train_timesteps);

// ---- decode
// ---------------------------------------------------------------------------------------
/// How decode_latents spends memory: GenerateOptions::vae_tiling resolved against a size.
struct DecodePlan {
  bool one_image_at_a_time = false;  // diffusers' enable_slicing (same images)
  VaeTiling tiling;                  // diffusers' enable_tiling
};
/// The plan for `mode` ("off", "on", "auto"; GenerateOptions::vae_tiling) and latents [B, C, h,
/// w]: "auto" slices a batch whose decode would need more than `budget_bytes` of activations and
/// tiles an image that alone would.
DecodePlan plan_decode(const AutoencoderKL& vae, const std::string& mode, int tile_size,
                       const Shape& latents, size_t budget_bytes);
/// latents / scaling_factor through the VAE decoder as `plan` says, checked finite.
Tensor decode_latents(const StableDiffusionModel& model, const Tensor& latents,
                      const DecodePlan& plan = {});

}  // namespace diffuse::stages
