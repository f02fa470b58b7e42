// DDPMScheduler (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"): ancestral sampling
// of the posterior q(x_prev | x_t, x0) on a (possibly spaced) timestep schedule.
#pragma once

#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_math.h"

namespace diffuse {

/// Config keys (diffusers defaults): num_train_timesteps 1000, beta_start 0.0001, beta_end 0.02,
/// beta_schedule "linear" (also "sigmoid", "laplace"), trained_betas, variance_type
/// "fixed_small" (also "fixed_small_log", "fixed_large"; the learned variances need a model that
/// predicts them and are rejected), clip_sample true, clip_sample_range 1, prediction_type
/// "epsilon", thresholding false, timestep_spacing "leading", steps_offset 0,
/// rescale_betas_zero_snr false.
///
/// Random draws: one randn of the sample's shape per step whose timestep is above 0, drawn after
/// the posterior mean is computed (diffusers' order).
class DDPMScheduler : public Scheduler {
 public:
  explicit DDPMScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "DDPMScheduler"; }
  void set_timesteps(int num_inference_steps) override;
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;
  Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const override;

 private:
  enum class Variance { FixedSmall, FixedSmallLog, FixedLarge };
  /// The timestep after `t` in the schedule (-1 after the last), as diffusers' previous_timestep.
  int previous_timestep(int t) const;

  NoiseSchedule ns_;
  Prediction prediction_;
  X0Clamp clamp_;
  Variance variance_;
  std::string spacing_;
  int steps_offset_;
  int num_inference_steps_ = 0;
};

}  // namespace diffuse
