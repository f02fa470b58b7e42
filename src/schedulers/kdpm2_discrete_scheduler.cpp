#include "schedulers/kdpm2_discrete_scheduler.h"

#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

KDPM2DiscreteScheduler::KDPM2DiscreteScheduler(const SchedulerConfig& config)
    : KDPM2SchedulerBase(config, "KDPM2DiscreteScheduler") {
  // diffusers builds the full training-length schedule at construction, which is what
  // init_noise_sigma reports before set_timesteps.
  set_timesteps(static_cast<int>(log_sigmas_.size()));
}

void KDPM2DiscreteScheduler::build_interpolated(const std::vector<float>& sigmas,
                                                const std::vector<double>& timesteps) {
  // Midpoints in log-sigma between each sigma and the one before it:
  // sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp(), in float32. torch's lerp at weight 0.5
  // computes end - (end - start) * 0.5. Entry 0 (paired with the final 0 by the roll) is NaN in
  // diffusers and never used; entry N is 0.
  std::vector<float> interp(sigmas.size());
  for (size_t i = 0; i < sigmas.size(); ++i) {
    const float start = std::log(sigmas[i]);
    const float end = std::log(sigmas[i == 0 ? sigmas.size() - 1 : i - 1]);
    interp[i] = std::exp(end - (end - start) * 0.5f);
  }
  sigmas_interpol_ = interleave(interp);
  // Timesteps: t_0, then (t at the midpoint i, t_i) for i = 1..N-1.
  timesteps_.clear();
  timesteps_.push_back(timesteps.front());
  for (size_t i = 1; i + 1 < sigmas.size(); ++i) {
    timesteps_.push_back(sigma_to_t_f32(interp[i], log_sigmas_));
    timesteps_.push_back(timesteps[i]);
  }
}

float KDPM2DiscreteScheduler::second_order_input_sigma() const {
  return sigmas_interpol_[static_cast<size_t>(step_index_)];
}

Tensor KDPM2DiscreteScheduler::step(const Tensor& model_output, double timestep,
                                    const Tensor& sample, RandomSource* rng) {
  (void)rng;  // deterministic
  check_step_args(model_output, sample, who_);
  init_step_index(timestep);
  const auto idx = static_cast<size_t>(step_index_);
  if (idx >= timesteps_.size())
    throw ConfigError("KDPM2DiscreteScheduler: step called more often than there are timesteps");
  // First evaluation: Euler from sigma to the midpoint. Second: the derivative at the midpoint
  // carries the saved sample from sigma all the way to the next sigma.
  const float sigma = first_order_ ? sigmas_f32_[idx] : sigmas_f32_[idx - 1];
  const float sigma_interpol = first_order_ ? sigmas_interpol_[idx + 1] : sigmas_interpol_[idx];
  const float sigma_next = first_order_ ? sigmas_f32_[idx + 1] : sigmas_f32_[idx];
  const float sigma_input = first_order_ ? sigma : sigma_interpol;

  Tensor out = Tensor::empty(sample.shape());
  predict_x0(model_output, sample, sigma_input, out);  // out holds x0 until the update below
  const float* x = sample.f32();
  float* o = out.f32();
  const int64_t n = out.numel();
  if (first_order_) {
    const float dt = sigma_interpol - sigma;
    save_sample(sample);
    for (int64_t i = 0; i < n; ++i) o[i] = x[i] + (x[i] - o[i]) / sigma * dt;
    first_order_ = false;
  } else {
    const float dt = sigma_next - sigma;
    const float* start = saved_sample_.f32();
    if (saved_sample_.shape() != sample.shape())
      throw ShapeError("KDPM2DiscreteScheduler: sample shape changed within a step");
    for (int64_t i = 0; i < n; ++i) o[i] = start[i] + (x[i] - o[i]) / sigma_interpol * dt;
    first_order_ = true;
  }
  ++step_index_;
  return out;
}

std::unique_ptr<Scheduler> make_kdpm2_discrete(const SchedulerConfig& config) {
  return std::make_unique<KDPM2DiscreteScheduler>(config);
}

}  // namespace diffuse
