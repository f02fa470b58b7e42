#include "schedulers/kdpm2_ancestral_discrete_scheduler.h"

#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/multistep_common.h"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

KDPM2AncestralDiscreteScheduler::KDPM2AncestralDiscreteScheduler(const SchedulerConfig& config)
    : KDPM2SchedulerBase(config, "KDPM2AncestralDiscreteScheduler") {
  // diffusers builds the full training-length schedule at construction, which is what
  // init_noise_sigma reports before set_timesteps.
  set_timesteps(static_cast<int>(log_sigmas_.size()));
}

void KDPM2AncestralDiscreteScheduler::build_interpolated(const std::vector<float>& sigmas,
                                                         const std::vector<double>& timesteps) {
  // The ancestral split of each step, in float32 as diffusers computes it:
  //   up = sqrt(next^2 (s^2 - next^2) / s^2), down = sqrt(next^2 - up^2),
  // and the midpoints in log-sigma between each sigma and its sigma_down (torch's lerp at 0.5:
  // end - (end - start) * 0.5). The last two midpoints are 0: the final step goes straight to 0.
  const size_t n = sigmas.size();
  std::vector<float> up(n), down(n), interp(n);
  for (size_t i = 0; i < n; ++i) {
    const float s = sigmas[i], next = i + 1 < n ? sigmas[i + 1] : 0.0f;
    up[i] = std::sqrt(next * next * (s * s - next * next) / (s * s));
    down[i] = i + 1 < n ? std::sqrt(next * next - up[i] * up[i]) : 0.0f;
    const float start = std::log(s), end = std::log(down[i]);
    interp[i] = i + 2 < n ? std::exp(end - (end - start) * 0.5f) : 0.0f;
  }
  sigmas_up_ = interleave(up);
  sigmas_down_ = interleave(down);
  sigmas_interpol_ = interleave(interp);
  // Timesteps: t_0, then (t at midpoint i, t_{i+1}) for i = 0..N-2.
  timesteps_.clear();
  timesteps_.push_back(timesteps.front());
  for (size_t i = 0; i + 2 < n; ++i) {
    timesteps_.push_back(sigma_to_t_f32(interp[i], log_sigmas_));
    timesteps_.push_back(timesteps[i + 1]);
  }
}

void KDPM2AncestralDiscreteScheduler::after_second_order(size_t k, RandomSource* rng, Tensor& out) {
  const Tensor z = draw_noise(rng, out, "KDPM2AncestralDiscreteScheduler::step");
  out = ops::evaluate(in(0) + in(1) * sigmas_up_[k], {out, z});
}

std::unique_ptr<Scheduler> make_kdpm2_ancestral_discrete(const SchedulerConfig& config) {
  return std::make_unique<KDPM2AncestralDiscreteScheduler>(config);
}

}  // namespace diffuse
