#include "schedulers/euler_discrete_scheduler.h"

#include "schedulers/scheduler_registry.h"

namespace diffuse {

EulerDiscreteScheduler::EulerDiscreteScheduler(const SchedulerConfig& c)
    : SigmaScheduler(c, NoiseSchedule::Options{}, SigmaScheduleOptions{true, true}) {}

Tensor EulerDiscreteScheduler::step(const Tensor& model_output, double timestep,
                                    const Tensor& sample, RandomSource* /*rng*/) {
  check_step_args(model_output, sample, "EulerDiscreteScheduler::step");
  const int i = step_index(timestep);
  // With s_churn = 0, gamma = 0 and sigma_hat = sigma * (gamma + 1) = sigma.
  const float s = sigma(i);
  const float s_hat = s * 1.0f;
  const float dt = sigma(i + 1) - s_hat;
  // The v_prediction form uses sigma, epsilon uses sigma_hat (equal here).
  const X0Form x0 = x0_form(prediction_ == Prediction::VPrediction ? s : s_hat);
  const Expr m = in(0), x = in(1);
  const Expr d = (x - x0(m, x)) / s_hat;  // dx/dsigma (Karras Eq. 3)
  Tensor out = ops::evaluate(x + d * dt, {model_output, sample});
  advance();
  return out;
}

std::unique_ptr<Scheduler> make_euler_discrete(const SchedulerConfig& config) {
  return std::make_unique<EulerDiscreteScheduler>(config);
}

}  // namespace diffuse
