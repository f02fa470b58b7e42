#include "schedulers/ddpm_scheduler.h"

#include <algorithm>
#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

namespace {
NoiseSchedule::Options ddpm_betas() {
  NoiseSchedule::Options o;
  o.allow_sigmoid_laplace = true;
  return o;
}
}  // namespace

DDPMScheduler::DDPMScheduler(const SchedulerConfig& c)
    : ns_(NoiseSchedule::from_config(c, ddpm_betas())),
      prediction_(read_prediction(c, {"epsilon", "sample", "v_prediction"})),
      clamp_(X0Clamp::from_config(c, /*clip_sample_default=*/true)),
      spacing_(c.choice("timestep_spacing", "leading", {"linspace", "leading", "trailing"})),
      steps_offset_(c.integer("steps_offset", 0)) {
  const std::string v =
      c.choice("variance_type", "fixed_small", {"fixed_small", "fixed_small_log", "fixed_large"});
  variance_ = v == "fixed_small"       ? Variance::FixedSmall
              : v == "fixed_small_log" ? Variance::FixedSmallLog
                                       : Variance::FixedLarge;
  for (int t = ns_.num_train_timesteps - 1; t >= 0; --t) timesteps_.push_back(t);
}

void DDPMScheduler::set_timesteps(int steps) {
  timesteps_ = spaced_timesteps(spacing_, ns_.num_train_timesteps, steps, steps_offset_);
  num_inference_steps_ = steps;
}

int DDPMScheduler::previous_timestep(int t) const {
  if (num_inference_steps_ == 0) return t - 1;  // the full training chain
  const auto it = std::find(timesteps_.begin(), timesteps_.end(), double(t));
  if (it == timesteps_.end())
    throw ConfigError("DDPMScheduler::step: timestep " + std::to_string(t) +
                      " is not in the schedule");
  return it + 1 == timesteps_.end() ? -1 : static_cast<int>(*(it + 1));
}

Tensor DDPMScheduler::step(const Tensor& model_output, double timestep, const Tensor& sample,
                           RandomSource* rng) {
  check_step_args(model_output, sample, "DDPMScheduler::step");
  const int t = train_index(timestep, ns_.num_train_timesteps, "DDPMScheduler::step");
  const int prev_t = previous_timestep(t);
  const float a_t = ns_.alphas_cumprod[static_cast<size_t>(t)];
  const float a_prev = prev_t >= 0 ? ns_.alphas_cumprod[static_cast<size_t>(prev_t)] : 1.0f;
  const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
  const float cur_alpha = a_t / a_prev, cur_beta = 1.0f - cur_alpha;
  const float sa = std::sqrt(a_t), sb = std::sqrt(b_t);

  Tensor x0 = predict_original_sample(prediction_, model_output, sample, sa, sb);
  clamp_.apply(x0);
  // Posterior mean, Eq. 7 of Ho et al.
  const float x0_coeff = (std::sqrt(a_prev) * cur_beta) / b_t;
  const float xt_coeff = std::sqrt(cur_alpha) * b_prev / b_t;
  Tensor out = ops::evaluate(x0_coeff * in(0) + xt_coeff * in(1), {x0, sample});
  if (t > 0) {
    const Tensor z = draw_noise(rng, sample, "DDPMScheduler::step");
    // Posterior variance beta~_t (Eq. 7), clamped away from 0 as diffusers does.
    const float var_small = std::max((1.0f - a_prev) / (1.0f - a_t) * cur_beta, 1e-20f);
    float scale = 0;
    switch (variance_) {
      case Variance::FixedSmall:
        scale = std::sqrt(var_small);
        break;
      case Variance::FixedSmallLog:
        scale = std::exp(0.5f * std::log(var_small));
        break;
      case Variance::FixedLarge:
        scale = std::sqrt(cur_beta);
        break;
    }
    out = ops::evaluate(in(0) + scale * in(1), {out, z});
  }
  return out;
}

Tensor DDPMScheduler::add_noise(const Tensor& original, const Tensor& noise,
                                double timestep) const {
  const int t = train_index(timestep, ns_.num_train_timesteps, "DDPMScheduler::add_noise");
  return add_noise_alpha(ns_.alphas_cumprod[static_cast<size_t>(t)], original, noise);
}

std::unique_ptr<Scheduler> make_ddpm(const SchedulerConfig& config) {
  return std::make_unique<DDPMScheduler>(config);
}

}  // namespace diffuse
