#include "schedulers/euler_ancestral_discrete_scheduler.h"

#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

EulerAncestralDiscreteScheduler::EulerAncestralDiscreteScheduler(const SchedulerConfig& c)
    : SigmaScheduler(c, NoiseSchedule::Options{}, SigmaScheduleOptions{false, false}) {
  // diffusers raises NotImplementedError for it at the first step; refuse it up front.
  if (prediction_ == Prediction::Sample)
    throw ConfigError(
        "scheduler config: unsupported prediction_type \"sample\" for "
        "EulerAncestralDiscreteScheduler (supported: epsilon, v_prediction)");
}

Tensor EulerAncestralDiscreteScheduler::step(const Tensor& model_output, double timestep,
                                             const Tensor& sample, RandomSource* rng) {
  check_step_args(model_output, sample, "EulerAncestralDiscreteScheduler::step");
  if (!rng) throw ConfigError("EulerAncestralDiscreteScheduler::step: needs a random source");
  const int i = step_index(timestep);
  const float s_from = sigma(i), s_to = sigma(i + 1);
  // Split the move to s_to into a deterministic part to sigma_down and fresh noise sigma_up with
  // sigma_down^2 + sigma_up^2 = s_to^2 (float32, diffusers' operation order).
  const float s_up = std::sqrt(s_to * s_to * (s_from * s_from - s_to * s_to) / (s_from * s_from));
  const float s_down = std::sqrt(s_to * s_to - s_up * s_up);
  const float dt = s_down - s_from;
  const X0Form x0 = x0_form(s_from);
  const Expr m = in(0), x = in(1);
  const Expr d = (x - x0(m, x)) / s_from;
  Tensor out = ops::evaluate(x + d * dt, {model_output, sample});
  const Tensor z = draw_noise(rng, sample, "EulerAncestralDiscreteScheduler::step");
  out = ops::evaluate(in(0) + in(1) * s_up, {out, z});
  advance();
  return out;
}

std::unique_ptr<Scheduler> make_euler_ancestral(const SchedulerConfig& config) {
  return std::make_unique<EulerAncestralDiscreteScheduler>(config);
}

}  // namespace diffuse
