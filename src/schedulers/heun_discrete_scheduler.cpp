#include "schedulers/heun_discrete_scheduler.h"

#include <algorithm>
#include <cstring>

#include "schedulers/scheduler_registry.h"

namespace diffuse {

namespace {
NoiseSchedule::Options heun_betas() {
  NoiseSchedule::Options o;
  o.beta_start = 0.00085;
  o.beta_end = 0.012;
  o.allow_exp = true;
  o.reads_rescale_zero_snr = false;
  return o;
}
}  // namespace

HeunDiscreteScheduler::HeunDiscreteScheduler(const SchedulerConfig& c)
    : SigmaScheduler(c, heun_betas(), SigmaScheduleOptions{true, false}),
      clip_sample_(c.boolean("clip_sample", false)),
      clip_range_(static_cast<float>(c.number("clip_sample_range", 1.0))) {}

void HeunDiscreteScheduler::set_timesteps(int steps) {
  build_schedule(steps);
  // sigmas [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0]; timesteps [t0, t1, t1, ..., t_{n-1}, t_{n-1}].
  std::vector<double> s{sigmas_.front()}, t{timesteps_.front()};
  for (size_t i = 1; i + 1 < sigmas_.size(); ++i) s.insert(s.end(), 2, sigmas_[i]);
  s.push_back(sigmas_.back());
  for (size_t i = 1; i < timesteps_.size(); ++i) t.insert(t.end(), 2, timesteps_[i]);
  sigmas_ = std::move(s);
  timesteps_ = std::move(t);
  dt_.reset();
}

Tensor HeunDiscreteScheduler::step(const Tensor& model_output, double timestep,
                                   const Tensor& sample, RandomSource* /*rng*/) {
  check_step_args(model_output, sample, "HeunDiscreteScheduler::step");
  const int i = step_index(timestep);
  const bool first = !dt_.has_value();
  const float s = first ? sigma(i) : sigma(i - 1);
  const float s_next = first ? sigma(i + 1) : sigma(i);
  const float s_hat = s * 1.0f;  // gamma = 0
  // The Euler half predicts at sigma_hat, the correction at sigma_next.
  const float s_in = first ? s_hat : s_next;
  const X0Form x0 = x0_form(s_in);
  const Expr m = in(0), x = in(1);
  Expr pred = x0(m, x);
  if (clip_sample_) pred = clamp(pred, -clip_range_, clip_range_);
  Tensor out;
  if (first) {
    const float dt = s_next - s_hat;
    prev_derivative_ = ops::evaluate((x - pred) / s_hat, {model_output, sample});
    out = ops::evaluate(in(0) + in(1) * dt, {sample, prev_derivative_});
    first_sample_ = ops::evaluate(in(0), {sample});  // a copy: the caller owns `sample`
    dt_ = dt;
  } else {
    const float dt = *dt_;
    const Expr d = ((x - pred) / s_next + in(2)) / 2;
    out = ops::evaluate(in(3) + d * dt, {model_output, sample, prev_derivative_, first_sample_});
    dt_.reset();
  }
  advance();
  return out;
}

std::unique_ptr<Scheduler> make_heun_discrete(const SchedulerConfig& config) {
  return std::make_unique<HeunDiscreteScheduler>(config);
}

}  // namespace diffuse
