// LMSDiscreteScheduler: k-diffusion's linear multistep sampler (sample_lms), order 4. Each step
// integrates the Lagrange polynomial through the last derivatives (dx/dsigma at the last sigmas)
// over [sigma_i, sigma_{i+1}], as diffusers does with scipy's quad.
#pragma once

#include "schedulers/sigma_scheduler.h"

namespace diffuse {

/// Config keys (diffusers defaults): num_train_timesteps 1000, beta_start 0.0001, beta_end 0.02,
/// beta_schedule "linear", trained_betas, use_karras_sigmas false, use_exponential_sigmas false,
/// prediction_type "epsilon" (also "v_prediction", "sample"), timestep_spacing "linspace",
/// steps_offset 0. No random draws.
class LMSDiscreteScheduler : public SigmaScheduler {
 public:
  explicit LMSDiscreteScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "LMSDiscreteScheduler"; }
  void set_timesteps(int num_inference_steps) override;
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;

  /// The weight of the derivative at sigmas[t - current] in the order-`order` step from
  /// sigmas[t] to sigmas[t + 1] (diffusers' get_lms_coefficient).
  double lms_coefficient(int order, int t, int current) const;

 private:
  static constexpr int kOrder = 4;  // diffusers' step(order=4) default
  TensorHistory derivatives_{kOrder};
};

}  // namespace diffuse
