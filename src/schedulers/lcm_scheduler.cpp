#include "schedulers/lcm_scheduler.h"

#include <algorithm>
#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

namespace {
NoiseSchedule::Options lcm_betas() {
  NoiseSchedule::Options o;
  o.beta_start = 0.00085;
  o.beta_end = 0.012;
  o.beta_schedule = "scaled_linear";
  return o;
}
}  // namespace

LCMScheduler::LCMScheduler(const SchedulerConfig& c)
    : ns_(NoiseSchedule::from_config(c, lcm_betas())),
      prediction_(read_prediction(c, {"epsilon", "sample", "v_prediction"})),
      clamp_(X0Clamp::from_config(c, /*clip_sample_default=*/false)),
      original_steps_(c.integer("original_inference_steps", 50)),
      timestep_scaling_(c.number("timestep_scaling", 10.0)) {
  final_alpha_cumprod_ = c.boolean("set_alpha_to_one", true) ? 1.0f : ns_.alphas_cumprod[0];
  if (original_steps_ < 1 || original_steps_ > ns_.num_train_timesteps)
    throw ConfigError("scheduler config: original_inference_steps " +
                      std::to_string(original_steps_) + " is not in [1, num_train_timesteps]");
  for (int t = ns_.num_train_timesteps - 1; t >= 0; --t) timesteps_.push_back(t);
}

void LCMScheduler::set_timesteps(int steps) {
  if (steps < 1) throw ConfigError("steps must be at least 1 (got " + std::to_string(steps) + ")");
  if (steps > original_steps_)
    throw ConfigError("LCMScheduler: steps " + std::to_string(steps) +
                      " exceeds original_inference_steps " + std::to_string(original_steps_));
  // The distillation schedule: every k-th training timestep, k = N / original_steps, ending at
  // N - 1; inference takes `steps` of them, evenly by index (np.linspace endpoint=False, floor).
  const int k = ns_.num_train_timesteps / original_steps_;
  std::vector<int> origin(static_cast<size_t>(original_steps_));
  for (int i = 0; i < original_steps_; ++i)
    origin[static_cast<size_t>(i)] = (original_steps_ - i) * k - 1;  // descending
  const double delta = double(original_steps_) / steps;
  timesteps_.clear();
  for (int i = 0; i < steps; ++i) {
    const auto idx = static_cast<size_t>(std::floor(i * delta));
    timesteps_.push_back(origin[idx]);
  }
  num_inference_steps_ = steps;
  step_index_ = -1;
  begin_set_ = false;
}

void LCMScheduler::set_begin_index(int index) {
  Scheduler::set_begin_index(index);
  begin_set_ = true;
}

Tensor LCMScheduler::step(const Tensor& model_output, double timestep, const Tensor& sample,
                          RandomSource* rng) {
  check_step_args(model_output, sample, "LCMScheduler::step");
  if (num_inference_steps_ == 0) throw ConfigError("LCMScheduler::step: call set_timesteps first");
  const int t = train_index(timestep, ns_.num_train_timesteps, "LCMScheduler::step");
  if (step_index_ < 0) {
    if (begin_set_) {
      step_index_ = begin_index_;
    } else {
      const auto it = std::find(timesteps_.begin(), timesteps_.end(), double(t));
      if (it == timesteps_.end())
        throw ConfigError("LCMScheduler::step: timestep " + std::to_string(t) +
                          " is not in the schedule");
      step_index_ = static_cast<int>(it - timesteps_.begin());
    }
  }
  const size_t next = static_cast<size_t>(step_index_) + 1;
  const int prev_t = next < timesteps_.size() ? static_cast<int>(timesteps_[next]) : t;
  const float a_t = ns_.alphas_cumprod[static_cast<size_t>(t)];
  const float a_prev =
      prev_t >= 0 ? ns_.alphas_cumprod[static_cast<size_t>(prev_t)] : final_alpha_cumprod_;
  const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
  const float sa = std::sqrt(a_t), sb = std::sqrt(b_t);

  // Consistency boundary condition (LCM paper, Eq. 4 / consistency models' c_skip, c_out) with
  // sigma_data 0.5, evaluated in float32 as diffusers does on the timestep tensor.
  const float st = static_cast<float>(t) * static_cast<float>(timestep_scaling_);
  const float c_skip = 0.25f / (st * st + 0.25f);
  const float c_out = st / std::sqrt(st * st + 0.25f);

  Tensor x0 = predict_original_sample(prediction_, model_output, sample, sa, sb);
  clamp_.apply(x0);
  Tensor out = ops::evaluate(c_out * in(0) + c_skip * in(1), {x0, sample});  // denoised
  if (step_index_ != num_inference_steps_ - 1) {
    const Tensor z = draw_noise(rng, sample, "LCMScheduler::step");
    const float sa_prev = std::sqrt(a_prev), sb_prev = std::sqrt(b_prev);
    out = ops::evaluate(sa_prev * in(0) + sb_prev * in(1), {out, z});
  }
  ++step_index_;
  return out;
}

Tensor LCMScheduler::add_noise(const Tensor& original, const Tensor& noise, double timestep) const {
  const int t = train_index(timestep, ns_.num_train_timesteps, "LCMScheduler::add_noise");
  return add_noise_alpha(ns_.alphas_cumprod[static_cast<size_t>(t)], original, noise);
}

std::unique_ptr<Scheduler> make_lcm(const SchedulerConfig& config) {
  return std::make_unique<LCMScheduler>(config);
}

}  // namespace diffuse
