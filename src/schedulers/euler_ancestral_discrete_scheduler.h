// EulerAncestralDiscreteScheduler: Euler steps to sigma_down plus fresh noise of size sigma_up
// (k-diffusion's sample_euler_ancestral with eta = 1), as diffusers implements it.
#pragma once

#include "schedulers/sigma_scheduler.h"

namespace diffuse {

/// Config keys (diffusers defaults): num_train_timesteps 1000, beta_start 0.0001, beta_end 0.02,
/// beta_schedule "linear", trained_betas, prediction_type "epsilon" (also "v_prediction"),
/// timestep_spacing "linspace", steps_offset 0, rescale_betas_zero_snr false.
///
/// Random draws: one randn of the sample's shape at every step, the last included (where
/// sigma_up is 0), drawn after the deterministic part.
class EulerAncestralDiscreteScheduler : public SigmaScheduler {
 public:
  explicit EulerAncestralDiscreteScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "EulerAncestralDiscreteScheduler"; }
  void set_timesteps(int num_inference_steps) override { build_schedule(num_inference_steps); }
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;

 private:
};

}  // namespace diffuse
