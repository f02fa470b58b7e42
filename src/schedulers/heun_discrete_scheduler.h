// HeunDiscreteScheduler: Algorithm 1 of Karras et al. 2022 (Heun's 2nd-order method on the
// probability-flow ODE), as diffusers implements it: each step after the first takes two model
// evaluations, so timesteps() repeats every entry but the first, and the last step (to sigma 0)
// is a plain Euler step.
#pragma once

#include <optional>

#include "schedulers/sigma_scheduler.h"

namespace diffuse {

/// Config keys (diffusers defaults): num_train_timesteps 1000, beta_start 0.00085, beta_end
/// 0.012, beta_schedule "linear" (also "exp"), trained_betas, prediction_type "epsilon" (also
/// "v_prediction", "sample"), use_karras_sigmas false, use_exponential_sigmas false, clip_sample
/// false, clip_sample_range 1, timestep_spacing "linspace", steps_offset 0. No random draws.
class HeunDiscreteScheduler : public SigmaScheduler {
 public:
  explicit HeunDiscreteScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "HeunDiscreteScheduler"; }
  int order() const override { return 2; }
  void set_timesteps(int num_inference_steps) override;
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;

 private:
  bool clip_sample_;
  float clip_range_;
  std::optional<float> dt_;  // set between the two halves of a step
  Tensor prev_derivative_, first_sample_;
};

}  // namespace diffuse
