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
  const int64_t n = sample.numel();
  const float* m = model_output.f32();
  const float* x = sample.f32();
  Tensor out = Tensor::empty(sample.shape());
  float* o = out.f32();
  auto pred = [&](int64_t k) {
    float v = x0(m[k], x[k]);
    if (clip_sample_) v = std::clamp(v, -clip_range_, clip_range_);
    return v;
  };
  if (first) {
    if (!prev_derivative_.defined() || prev_derivative_.shape() != sample.shape()) {
      prev_derivative_ = Tensor::empty(sample.shape());
      first_sample_ = Tensor::empty(sample.shape());
    }
    float* pd = prev_derivative_.f32();
    const float dt = s_next - s_hat;
    for (int64_t k = 0; k < n; ++k) {
      pd[k] = (x[k] - pred(k)) / s_hat;
      o[k] = x[k] + pd[k] * dt;
    }
    std::memcpy(first_sample_.f32(), x, static_cast<size_t>(n) * sizeof(float));
    dt_ = dt;
  } else {
    const float* pd = prev_derivative_.f32();
    const float* x_first = first_sample_.f32();
    const float dt = *dt_;
    for (int64_t k = 0; k < n; ++k) {
      const float d = ((x[k] - pred(k)) / s_next + pd[k]) / 2;
      o[k] = x_first[k] + d * dt;
    }
    dt_.reset();
  }
  advance();
  return out;
}

std::unique_ptr<Scheduler> make_heun_discrete(const SchedulerConfig& config) {
  return std::make_unique<HeunDiscreteScheduler>(config);
}

}  // namespace diffuse
