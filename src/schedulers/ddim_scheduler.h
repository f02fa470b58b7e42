// DDIMScheduler (Song et al. 2021, "Denoising Diffusion Implicit Models"), as diffusers implements
// it: deterministic for eta = 0, DDPM-like ancestral noise for eta > 0.
#pragma once

#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_math.h"

namespace diffuse {

/// Config keys (diffusers defaults): num_train_timesteps 1000, beta_start 0.0001, beta_end 0.02,
/// beta_schedule "linear", trained_betas, clip_sample true, clip_sample_range 1, set_alpha_to_one
/// true, steps_offset 0, prediction_type "epsilon", thresholding false, timestep_spacing
/// "leading", rescale_betas_zero_snr false. One key diffusers passes to step() instead:
/// "eta" (default 0), the weight of the ancestral noise.
///
/// Random draws: with eta > 0, each step draws one randn of the sample's shape (after computing
/// the deterministic part), exactly as diffusers' `randn_tensor(model_output.shape, generator)`.
class DDIMScheduler : public Scheduler {
 public:
  explicit DDIMScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "DDIMScheduler"; }
  void set_timesteps(int num_inference_steps) override;
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;
  Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const override;

  double eta() const { return eta_; }
  void set_eta(double eta) { eta_ = eta; }

 private:
  NoiseSchedule ns_;
  float final_alpha_cumprod_;
  Prediction prediction_;
  X0Clamp clamp_;
  std::string spacing_;
  int steps_offset_;
  double eta_;
  int num_inference_steps_ = 0;
};

}  // namespace diffuse
