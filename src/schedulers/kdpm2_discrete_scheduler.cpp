#include "schedulers/kdpm2_discrete_scheduler.h"

#include <cmath>

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

std::unique_ptr<Scheduler> make_kdpm2_discrete(const SchedulerConfig& config) {
  return std::make_unique<KDPM2DiscreteScheduler>(config);
}

}  // namespace diffuse
