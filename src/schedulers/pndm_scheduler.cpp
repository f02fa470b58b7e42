#include "schedulers/pndm_scheduler.h"

#include <algorithm>
#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

namespace {
NoiseSchedule::Options pndm_betas() {
  NoiseSchedule::Options o;
  o.reads_rescale_zero_snr = false;  // PNDMScheduler has no rescale_betas_zero_snr
  return o;
}
}  // namespace

PNDMScheduler::PNDMScheduler(const SchedulerConfig& c)
    : ns_(NoiseSchedule::from_config(c, pndm_betas())),
      prediction_(read_prediction(c, {"epsilon", "v_prediction"})),
      skip_prk_(c.boolean("skip_prk_steps", false)),
      spacing_(c.choice("timestep_spacing", "leading", {"linspace", "leading", "trailing"})),
      steps_offset_(c.integer("steps_offset", 0)) {
  final_alpha_cumprod_ = c.boolean("set_alpha_to_one", false) ? 1.0f : ns_.alphas_cumprod[0];
}

void PNDMScheduler::set_timesteps(int steps) {
  // The spaced schedule, ascending as diffusers' _timesteps.
  std::vector<double> ts =
      spaced_timesteps(spacing_, ns_.num_train_timesteps, steps, steps_offset_);
  std::reverse(ts.begin(), ts.end());
  timesteps_.clear();
  if (skip_prk_) {
    // plms = [ts[:-1], ts[-2], ts[-1]] reversed: the second-highest timestep repeats, for the
    // extra evaluation that replaces the Runge-Kutta warm-up.
    for (int i = steps - 1; i >= 0; --i) {
      timesteps_.push_back(ts[static_cast<size_t>(i)]);
      if (i == steps - 2) timesteps_.push_back(ts[static_cast<size_t>(i)]);
    }
    num_prk_ = 0;
  } else {
    // Pseudo Runge-Kutta on the last 4 training-spaced points (each in 4 evaluations at t,
    // t - h, t - h, t - 2h, h = half the step), then PLMS on the rest.
    if (steps < 4)
      throw ConfigError("PNDMScheduler: " + std::to_string(steps) +
                        " steps is too few for the Runge-Kutta warm-up (skip_prk_steps false needs "
                        "at least 4)");
    const double h = ns_.num_train_timesteps / steps / 2;
    std::vector<double> prk;  // ts[-4:].repeat(2) + tile([0, h], 4)
    for (int i = steps - 4; i < steps; ++i) {
      prk.push_back(ts[static_cast<size_t>(i)]);
      prk.push_back(ts[static_cast<size_t>(i)] + h);
    }
    std::vector<double> rep;  // prk[:-1].repeat(2)[1:-1]
    for (size_t i = 0; i + 1 < prk.size(); ++i) rep.insert(rep.end(), 2, prk[i]);
    rep = std::vector<double>(rep.begin() + 1, rep.end() - 1);
    timesteps_.assign(rep.rbegin(), rep.rend());
    num_prk_ = static_cast<int>(timesteps_.size());
    for (int i = steps - 4; i >= 0; --i) timesteps_.push_back(ts[static_cast<size_t>(i)]);
  }
  num_inference_steps_ = steps;
  counter_ = 0;
  ets_.clear();
  has_cur_sample_ = false;
}

Tensor PNDMScheduler::prev_sample(int t, int prev_t, const Expr& eps,
                                  const std::vector<Tensor>& inputs) const {
  const float a_t = ns_.alphas_cumprod[static_cast<size_t>(t)];
  const float a_prev =
      prev_t >= 0 ? ns_.alphas_cumprod[static_cast<size_t>(prev_t)] : final_alpha_cumprod_;
  const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
  const float sample_coeff = std::sqrt(a_prev / a_t);
  const float denom = a_t * std::sqrt(b_prev) + std::sqrt(a_t * b_t * a_prev);
  const float diff = a_prev - a_t;
  const float sa = std::sqrt(a_t), sb = std::sqrt(b_t);
  const Expr x = in(0);
  const Expr e = prediction_ == Prediction::VPrediction ? sa * eps + sb * x : eps;
  return ops::evaluate(sample_coeff * x - diff * e / denom, inputs);
}

Tensor PNDMScheduler::step(const Tensor& model_output, double timestep, const Tensor& sample,
                           RandomSource* /*rng*/) {
  check_step_args(model_output, sample, "PNDMScheduler::step");
  if (num_inference_steps_ == 0) throw ConfigError("PNDMScheduler::step: call set_timesteps first");
  const int t = train_index(timestep, ns_.num_train_timesteps, "PNDMScheduler::step");
  if (counter_ < num_prk_ && !skip_prk_) return step_prk(model_output, t, sample);
  return step_plms(model_output, t, sample);
}

Tensor PNDMScheduler::step_prk(const Tensor& model_output, int t, const Tensor& sample) {
  const int diff_to_prev = counter_ % 2 ? 0 : ns_.num_train_timesteps / num_inference_steps_ / 2;
  const int prev_t = t - diff_to_prev;
  const int group_t = static_cast<int>(timesteps_[static_cast<size_t>(counter_ / 4 * 4)]);
  // Runge-Kutta 4 weights 1/6, 1/3, 1/3, 1/6 (diffusers' float32 accumulation order); the raw
  // output drives the intermediate RK points, the accumulated one the last.
  const float sixth = static_cast<float>(1.0 / 6), third = static_cast<float>(1.0 / 3);
  Tensor eps = model_output;
  switch (counter_ % 4) {
    case 0:
      cur_model_output_ = ops::evaluate(sixth * in(0), {model_output});
      ets_.push(model_output);
      cur_sample_ = ops::evaluate(in(0), {sample});  // a copy: the caller owns `sample`
      has_cur_sample_ = true;
      break;
    case 1:
    case 2:
      cur_model_output_ = ops::evaluate(in(0) + third * in(1), {cur_model_output_, model_output});
      break;
    default:
      cur_model_output_ = ops::evaluate(in(0) + sixth * in(1), {cur_model_output_, model_output});
      eps = cur_model_output_;
      break;
  }
  Tensor out = prev_sample(group_t, prev_t, in(1), {has_cur_sample_ ? cur_sample_ : sample, eps});
  ++counter_;
  return out;
}

Tensor PNDMScheduler::step_plms(const Tensor& model_output, int t, const Tensor& sample) {
  if (!skip_prk_ && ets_.size() < 3)
    throw ConfigError("PNDMScheduler: PLMS steps need the Runge-Kutta warm-up first");
  const int ratio = ns_.num_train_timesteps / num_inference_steps_;
  int prev_t = t - ratio;
  if (counter_ != 1) {
    ets_.push(model_output);
  } else {
    // The repeated evaluation: an improved Euler (Heun) correction of the first step, from the
    // same starting sample and timestep.
    prev_t = t;
    t = t + ratio;
  }
  // Inputs: 0 = the sample the update starts from, then what eps combines.
  const int k = ets_.size();
  Tensor out;
  if (k == 1 && counter_ == 0) {
    cur_sample_ = ops::evaluate(in(0), {sample});  // a copy: the caller owns `sample`
    has_cur_sample_ = true;
    out = prev_sample(t, prev_t, in(1), {sample, model_output});
  } else if (k == 1 && counter_ == 1) {
    if (!has_cur_sample_) throw ConfigError("PNDMScheduler: step order broken");
    out = prev_sample(t, prev_t, (in(1) + in(2)) / 2, {cur_sample_, model_output, ets_[0]});
    has_cur_sample_ = false;
  } else if (k == 2) {
    out = prev_sample(t, prev_t, (3 * in(1) - in(2)) / 2, {sample, ets_[0], ets_[1]});
  } else if (k == 3) {
    out = prev_sample(t, prev_t, (23 * in(1) - 16 * in(2) + 5 * in(3)) / 12,
                      {sample, ets_[0], ets_[1], ets_[2]});
  } else {
    // 4th-order Adams-Bashforth combination (Eq. 12 of the paper).
    const float w = static_cast<float>(1.0 / 24);
    out = prev_sample(t, prev_t, w * (55 * in(1) - 59 * in(2) + 37 * in(3) - 9 * in(4)),
                      {sample, ets_[0], ets_[1], ets_[2], ets_[3]});
  }
  ++counter_;
  return out;
}

Tensor PNDMScheduler::add_noise(const Tensor& original, const Tensor& noise,
                                double timestep) const {
  const int t = train_index(timestep, ns_.num_train_timesteps, "PNDMScheduler::add_noise");
  return add_noise_alpha(ns_.alphas_cumprod[static_cast<size_t>(t)], original, noise);
}

std::unique_ptr<Scheduler> make_pndm(const SchedulerConfig& config) {
  return std::make_unique<PNDMScheduler>(config);
}

}  // namespace diffuse
