// EulerDiscreteScheduler: Algorithm 2 of Karras et al. 2022 ("Elucidating the Design Space of
// Diffusion-Based Generative Models") with s_churn = 0, i.e. the plain Euler method on the
// probability-flow ODE in sigma space, as diffusers implements it.
#pragma once

#include "schedulers/sigma_scheduler.h"

namespace diffuse {

/// Config keys (diffusers defaults): num_train_timesteps 1000, beta_start 0.0001, beta_end 0.02,
/// beta_schedule "linear", trained_betas, prediction_type "epsilon" (also "v_prediction",
/// "sample"), interpolation_type "linear" (or "log_linear"), use_karras_sigmas false,
/// use_exponential_sigmas false, sigma_min / sigma_max (Karras/exponential range), timestep_spacing
/// "linspace", timestep_type "discrete" (or "continuous" with v_prediction), steps_offset 0,
/// rescale_betas_zero_snr false, final_sigmas_type "zero" (or "sigma_min").
/// No random draws (s_churn is 0).
class EulerDiscreteScheduler : public SigmaScheduler {
 public:
  explicit EulerDiscreteScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "EulerDiscreteScheduler"; }
  void set_timesteps(int num_inference_steps) override { build_schedule(num_inference_steps); }
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;
};

}  // namespace diffuse
