#include "schedulers/ddim_scheduler.h"

#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

DDIMScheduler::DDIMScheduler(const SchedulerConfig& c)
    : ns_(NoiseSchedule::from_config(c)),
      prediction_(read_prediction(c, {"epsilon", "sample", "v_prediction"})),
      clamp_(X0Clamp::from_config(c, /*clip_sample_default=*/true)),
      spacing_(c.choice("timestep_spacing", "leading", {"linspace", "leading", "trailing"})),
      steps_offset_(c.integer("steps_offset", 0)),
      eta_(c.number("eta", 0.0)) {
  // With set_alpha_to_one the last step lands on a clean sample; otherwise on alphas_cumprod[0].
  final_alpha_cumprod_ = c.boolean("set_alpha_to_one", true) ? 1.0f : ns_.alphas_cumprod[0];
  if (eta_ < 0) throw ConfigError("DDIMScheduler: eta " + std::to_string(eta_) + " is negative");
  for (int t = ns_.num_train_timesteps - 1; t >= 0; --t) timesteps_.push_back(t);
}

void DDIMScheduler::set_timesteps(int steps) {
  timesteps_ = spaced_timesteps(spacing_, ns_.num_train_timesteps, steps, steps_offset_);
  num_inference_steps_ = steps;
}

Tensor DDIMScheduler::step(const Tensor& model_output, double timestep, const Tensor& sample,
                           RandomSource* rng) {
  check_step_args(model_output, sample, "DDIMScheduler::step");
  if (num_inference_steps_ == 0) throw ConfigError("DDIMScheduler::step: call set_timesteps first");
  const int t = train_index(timestep, ns_.num_train_timesteps, "DDIMScheduler::step");
  // DDIM's previous timestep is always t - N / steps, whatever the spacing (diffusers).
  const int prev_t = t - ns_.num_train_timesteps / num_inference_steps_;
  const float a_t = ns_.alphas_cumprod[static_cast<size_t>(t)];
  const float a_prev =
      prev_t >= 0 ? ns_.alphas_cumprod[static_cast<size_t>(prev_t)] : final_alpha_cumprod_;
  const float b_t = 1.0f - a_t;
  const float sa = std::sqrt(a_t), sb = std::sqrt(b_t);

  // x0 is clipped whole before it is combined, as in diffusers.
  Tensor x0 = predict_original_sample(prediction_, model_output, sample, sa, sb);
  clamp_.apply(x0);

  // Eq. 16 of the paper: sigma_t = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev).
  const float b_prev = 1.0f - a_prev;
  const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
  const float std_dev = static_cast<float>(eta_) * std::sqrt(variance);
  const float dir_coeff = std::sqrt(1.0f - a_prev - std_dev * std_dev);
  const float sa_prev = std::sqrt(a_prev);
  // The predicted noise comes from the unclipped prediction, as in diffusers.
  const Expr m = in(1), x = in(2);
  Expr eps = m;
  if (prediction_ == Prediction::Sample) eps = (x - sa * m) / sb;
  if (prediction_ == Prediction::VPrediction) eps = sa * m + sb * x;
  Tensor out = ops::evaluate(sa_prev * in(0) + dir_coeff * eps, {x0, model_output, sample});
  if (eta_ > 0) {
    const Tensor z = draw_noise(rng, sample, "DDIMScheduler::step with eta > 0");
    out = ops::evaluate(in(0) + std_dev * in(1), {out, z});
  }
  return out;
}

Tensor DDIMScheduler::add_noise(const Tensor& original, const Tensor& noise,
                                double timestep) const {
  const int t = train_index(timestep, ns_.num_train_timesteps, "DDIMScheduler::add_noise");
  return add_noise_alpha(ns_.alphas_cumprod[static_cast<size_t>(t)], original, noise);
}

std::unique_ptr<Scheduler> make_ddim(const SchedulerConfig& config) {
  return std::make_unique<DDIMScheduler>(config);
}

}  // namespace diffuse
