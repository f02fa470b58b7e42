// LCMScheduler (Luo et al. 2023, "Latent Consistency Models"): multistep consistency sampling.
// Each step maps x_t to a denoised estimate through the consistency boundary condition, then
// re-noises it to the next timestep.
#pragma once

#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_math.h"

namespace diffuse {

/// Config keys (diffusers defaults): num_train_timesteps 1000, beta_start 0.00085, beta_end
/// 0.012, beta_schedule "scaled_linear", trained_betas, original_inference_steps 50,
/// clip_sample false, clip_sample_range 1, set_alpha_to_one true, prediction_type "epsilon",
/// thresholding false, timestep_scaling 10, rescale_betas_zero_snr false. timestep_spacing and
/// steps_offset are accepted and ignored, as in diffusers.
///
/// Random draws: one randn of the sample's shape per step except the last (drawn after the
/// denoised estimate is computed).
class LCMScheduler : public Scheduler {
 public:
  explicit LCMScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "LCMScheduler"; }
  /// Throws ConfigError when steps exceeds original_inference_steps.
  void set_timesteps(int num_inference_steps) override;
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;
  Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const override;
  void set_begin_index(int index) override;

 private:
  NoiseSchedule ns_;
  float final_alpha_cumprod_;
  Prediction prediction_;
  X0Clamp clamp_;
  int original_steps_;
  double timestep_scaling_;
  int num_inference_steps_ = 0;
  int step_index_ = -1;  // -1: found from the first timestep passed to step()
  bool begin_set_ = false;
};

}  // namespace diffuse
