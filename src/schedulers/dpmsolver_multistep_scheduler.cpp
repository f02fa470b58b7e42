#include "schedulers/dpmsolver_multistep_scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "diffuse/error.hpp"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

DPMSolverMultistepScheduler::DPMSolverMultistepScheduler(const SchedulerConfig& c)
    : MultistepSchedulerBase(c, "DPMSolverMultistepScheduler", 3) {
  // "deis" is accepted and treated as dpmsolver++, as diffusers does for configs shared with
  // DEISMultistepScheduler; likewise the other solvers' solver_type names map to midpoint.
  const std::string algorithm =
      c.choice("algorithm_type", "dpmsolver++",
               {"dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++", "deis"});
  algorithm_ = algorithm == "dpmsolver"         ? Algorithm::DpmSolver
               : algorithm == "sde-dpmsolver"   ? Algorithm::SdeDpmSolver
               : algorithm == "sde-dpmsolver++" ? Algorithm::SdeDpmSolverPP
                                                : Algorithm::DpmSolverPP;
  heun_ =
      c.choice("solver_type", "midpoint", {"midpoint", "heun", "logrho", "bh1", "bh2"}) == "heun";
  euler_at_final_ = c.boolean("euler_at_final", false);

  if (c.has("variance_type"))
    throw unsupported("variance_type " + c.json().at("variance_type").dump() +
                      " is not supported (only null)");
  // Karras and exponential spacing take precedence over Lu's lambdas, as in diffusers.
  if (sigma_spacing_ == SigmaSpacing::Interpolated && c.boolean("use_lu_lambdas", false))
    sigma_spacing_ = SigmaSpacing::LuLambdas;
  if (!data_prediction() && final_sigma_zero_)
    throw unsupported("final_sigmas_type \"zero\" is not supported with algorithm_type \"" +
                      algorithm + "\"; use \"sigma_min\"");
  if (algorithm_ == Algorithm::SdeDpmSolver && solver_order_ == 3)
    throw unsupported("solver_order 3 is not supported with algorithm_type \"sde-dpmsolver\"");
  lambda_min_clipped_ = c.number("lambda_min_clipped", -std::numeric_limits<double>::infinity());
  round_sigma_timesteps_ = c.string("beta_schedule", "linear") != "squaredcos_cap_v2";
}

void DPMSolverMultistepScheduler::set_timesteps(int steps) {
  const int n_train = schedule_.num_train_timesteps;
  // lambda_min_clipped cuts the noisy end of the schedule: count the training steps whose
  // float32 lambda lies below it (torch.searchsorted on the flipped, ascending lambdas).
  int clipped = 0;
  for (float a : schedule_.alphas_cumprod) {
    const float lambda = std::log(std::sqrt(a)) - std::log(std::sqrt(1.0f - a));
    if (double(lambda) < lambda_min_clipped_) ++clipped;
  }
  auto ts =
      multistep_timesteps(timestep_spacing_, n_train - clipped, n_train, steps, steps_offset_);
  if (ts.empty()) throw unsupported("empty schedule");

  std::vector<double> sig;
  if (sigma_spacing_ == SigmaSpacing::Interpolated) {
    sig = train_sigmas_at(ts);
  } else {
    const double train_min = train_sigmas_.front(), train_max = train_sigmas_.back();
    const auto log_sigmas = log_sigmas_f32(train_sigmas_);
    if (sigma_spacing_ == SigmaSpacing::Karras) {
      sig = karras_sigmas(train_min, train_max, steps);
    } else if (sigma_spacing_ == SigmaSpacing::Exponential) {
      sig = exponential_sigmas(train_min, train_max, steps);
    } else {  // Lu et al.: uniform in log-sigma between the training extremes
      const auto ramp = linspace(0, 1, steps);
      const double lmin = log_sigmas.front(), lmax = log_sigmas.back();
      for (double r : ramp) sig.push_back(std::exp(lmax + r * (lmin - lmax)));
    }
    const bool round = round_sigma_timesteps_ && sigma_spacing_ != SigmaSpacing::Exponential;
    ts = multistep_timesteps_of_sigmas(sig, log_sigmas, round);
  }
  // The final sigma: 0 (step to the clean sample) or the smallest training sigma.
  set_schedule(std::move(ts), sig,
               final_sigma_zero_ ? 0.0f : static_cast<float>(train_sigmas_.front()));
}

void DPMSolverMultistepScheduler::convert(const Tensor& model_output, const Tensor& sample,
                                          Tensor& out) const {
  convert_model_output(model_output, sample, data_prediction(), out);
  if (data_prediction() || !threshold_.thresholding) return;
  // Noise prediction: threshold the implied x0, then recover epsilon from it.
  const AlphaSigma as =
      alpha_sigma_of(static_cast<float>(sigmas_[static_cast<size_t>(step_index_)]));
  const float at = as.alpha, st = as.sigma;
  const int64_t n = sample.numel();
  const float* x = sample.f32();
  float* o = out.f32();
  for (int64_t i = 0; i < n; ++i) o[i] = (x[i] - st * o[i]) / at;
  threshold_.apply(out);
  for (int64_t i = 0; i < n; ++i) o[i] = (x[i] - at * o[i]) / st;
}

// The update formulas below evaluate diffusers' expressions term by term in the same order, each
// scalar coefficient in float32, so every element rounds as torch's chain of tensor ops does.

void DPMSolverMultistepScheduler::first_order_update(const Tensor& sample, const float* noise,
                                                     Tensor& out) const {
  const auto i0 = static_cast<size_t>(step_index_);
  const AlphaSigma t = alpha_sigma_of(static_cast<float>(sigmas_[i0 + 1]));
  const AlphaSigma s = alpha_sigma_of(static_cast<float>(sigmas_[i0]));
  const float h = t.lambda - s.lambda;
  const int64_t n = sample.numel();
  const float* x = sample.f32();
  const float* m = model_outputs_.back().f32();
  float* o = out.f32();
  switch (algorithm_) {
    case Algorithm::DpmSolverPP: {
      const float c1 = t.sigma / s.sigma, c2 = t.alpha * (std::exp(-h) - 1.0f);
      for (int64_t i = 0; i < n; ++i) o[i] = c1 * x[i] - c2 * m[i];
      break;
    }
    case Algorithm::DpmSolver: {
      const float c1 = t.alpha / s.alpha, c2 = t.sigma * (std::exp(h) - 1.0f);
      for (int64_t i = 0; i < n; ++i) o[i] = c1 * x[i] - c2 * m[i];
      break;
    }
    case Algorithm::SdeDpmSolverPP: {
      const float e2 = std::exp(-2.0f * h);
      const float c1 = t.sigma / s.sigma * std::exp(-h), c2 = t.alpha * (1.0f - e2);
      const float c3 = t.sigma * std::sqrt(1.0f - e2);
      for (int64_t i = 0; i < n; ++i) o[i] = c1 * x[i] + c2 * m[i] + c3 * noise[i];
      break;
    }
    case Algorithm::SdeDpmSolver: {
      const float c1 = t.alpha / s.alpha, c2 = 2.0f * (t.sigma * (std::exp(h) - 1.0f));
      const float c3 = t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f);
      for (int64_t i = 0; i < n; ++i) o[i] = c1 * x[i] - c2 * m[i] + c3 * noise[i];
      break;
    }
  }
}

void DPMSolverMultistepScheduler::second_order_update(const Tensor& sample, const float* noise,
                                                      Tensor& out) const {
  const auto i0 = static_cast<size_t>(step_index_);
  const AlphaSigma t = alpha_sigma_of(static_cast<float>(sigmas_[i0 + 1]));
  const AlphaSigma s0 = alpha_sigma_of(static_cast<float>(sigmas_[i0]));
  const AlphaSigma s1 = alpha_sigma_of(static_cast<float>(sigmas_[i0 - 1]));
  const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda;
  const float r0 = h0 / h;
  const float inv_r0 = 1.0f / r0;
  const size_t k = model_outputs_.size();
  const float* m0 = model_outputs_[k - 1].f32();
  const float* m1 = model_outputs_[k - 2].f32();
  const int64_t n = sample.numel();
  const float* x = sample.f32();
  float* o = out.f32();
  // D0 = m0, D1 = (1 / r0) * (m0 - m1).
  auto d1 = [&](int64_t i) { return inv_r0 * (m0[i] - m1[i]); };
  switch (algorithm_) {
    case Algorithm::DpmSolverPP: {
      const float c1 = t.sigma / s0.sigma, c2 = t.alpha * (std::exp(-h) - 1.0f);
      if (!heun_) {
        const float c3 = 0.5f * c2;
        for (int64_t i = 0; i < n; ++i) o[i] = c1 * x[i] - c2 * m0[i] - c3 * d1(i);
      } else {
        const float c3 = t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f);
        for (int64_t i = 0; i < n; ++i) o[i] = c1 * x[i] - c2 * m0[i] + c3 * d1(i);
      }
      break;
    }
    case Algorithm::DpmSolver: {
      const float c1 = t.alpha / s0.alpha, c2 = t.sigma * (std::exp(h) - 1.0f);
      const float c3 = heun_ ? t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f) : 0.5f * c2;
      for (int64_t i = 0; i < n; ++i) o[i] = c1 * x[i] - c2 * m0[i] - c3 * d1(i);
      break;
    }
    case Algorithm::SdeDpmSolverPP: {
      const float e2 = std::exp(-2.0f * h);
      const float c1 = t.sigma / s0.sigma * std::exp(-h), c2 = t.alpha * (1.0f - e2);
      const float c3 = heun_ ? t.alpha * ((1.0f - e2) / (-2.0f * h) + 1.0f) : 0.5f * c2;
      const float c4 = t.sigma * std::sqrt(1.0f - e2);
      for (int64_t i = 0; i < n; ++i) o[i] = c1 * x[i] + c2 * m0[i] + c3 * d1(i) + c4 * noise[i];
      break;
    }
    case Algorithm::SdeDpmSolver: {
      const float c1 = t.alpha / s0.alpha, c2 = 2.0f * (t.sigma * (std::exp(h) - 1.0f));
      const float c3 = heun_ ? 2.0f * (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f))
                             : t.sigma * (std::exp(h) - 1.0f);
      const float c4 = t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f);
      for (int64_t i = 0; i < n; ++i) o[i] = c1 * x[i] - c2 * m0[i] - c3 * d1(i) + c4 * noise[i];
      break;
    }
  }
}

void DPMSolverMultistepScheduler::third_order_update(const Tensor& sample, const float* noise,
                                                     Tensor& out) const {
  const auto i0 = static_cast<size_t>(step_index_);
  const AlphaSigma t = alpha_sigma_of(static_cast<float>(sigmas_[i0 + 1]));
  const AlphaSigma s0 = alpha_sigma_of(static_cast<float>(sigmas_[i0]));
  const AlphaSigma s1 = alpha_sigma_of(static_cast<float>(sigmas_[i0 - 1]));
  const AlphaSigma s2 = alpha_sigma_of(static_cast<float>(sigmas_[i0 - 2]));
  const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, h1 = s1.lambda - s2.lambda;
  const float r0 = h0 / h, r1 = h1 / h;
  const float inv_r0 = 1.0f / r0, inv_r1 = 1.0f / r1;
  const float w1 = r0 / (r0 + r1), w2 = 1.0f / (r0 + r1);
  const size_t k = model_outputs_.size();
  const float* m0 = model_outputs_[k - 1].f32();
  const float* m1 = model_outputs_[k - 2].f32();
  const float* m2 = model_outputs_[k - 3].f32();
  const int64_t n = sample.numel();
  const float* x = sample.f32();
  float* o = out.f32();
  const float em = std::exp(-h), ep = std::exp(h);
  for (int64_t i = 0; i < n; ++i) {
    const float d10 = inv_r0 * (m0[i] - m1[i]), d11 = inv_r1 * (m1[i] - m2[i]);
    const float d1 = d10 + w1 * (d10 - d11), d2 = w2 * (d10 - d11);
    switch (algorithm_) {
      case Algorithm::DpmSolverPP: {
        const float c1 = t.sigma / s0.sigma, c2 = t.alpha * (em - 1.0f);
        const float c3 = t.alpha * ((em - 1.0f) / h + 1.0f);
        const float c4 = t.alpha * ((em - 1.0f + h) / (h * h) - 0.5f);
        o[i] = c1 * x[i] - c2 * m0[i] + c3 * d1 - c4 * d2;
        break;
      }
      case Algorithm::DpmSolver: {
        const float c1 = t.alpha / s0.alpha, c2 = t.sigma * (ep - 1.0f);
        const float c3 = t.sigma * ((ep - 1.0f) / h - 1.0f);
        const float c4 = t.sigma * ((ep - 1.0f - h) / (h * h) - 0.5f);
        o[i] = c1 * x[i] - c2 * m0[i] - c3 * d1 - c4 * d2;
        break;
      }
      case Algorithm::SdeDpmSolverPP: {
        const float e2 = std::exp(-2.0f * h);
        const float c1 = t.sigma / s0.sigma * em, c2 = t.alpha * (1.0f - e2);
        const float c3 = t.alpha * ((1.0f - e2) / (-2.0f * h) + 1.0f);
        const float c4 = t.alpha * ((1.0f - e2 - 2.0f * h) / ((2.0f * h) * (2.0f * h)) - 0.5f);
        const float c5 = t.sigma * std::sqrt(1.0f - e2);
        o[i] = c1 * x[i] + c2 * m0[i] + c3 * d1 + c4 * d2 + c5 * noise[i];
        break;
      }
      case Algorithm::SdeDpmSolver:  // rejected at construction
        break;
    }
  }
}

Tensor DPMSolverMultistepScheduler::solver_step(const Tensor& model_output, const Tensor& sample,
                                                RandomSource* rng) {
  const int n = static_cast<int>(timesteps_.size());
  const bool lower_order_final =
      step_index_ == n - 1 &&
      (euler_at_final_ || (lower_order_final_ && n < 15) || final_sigma_zero_);
  const bool lower_order_second = step_index_ == n - 2 && lower_order_final_ && n < 15;

  // Shift the history: the oldest buffer becomes the current step's slot.
  std::rotate(model_outputs_.begin(), model_outputs_.begin() + 1, model_outputs_.end());
  Tensor& current = reuse_buffer(model_outputs_.back(), sample.shape());
  convert(model_output, sample, current);

  const float* noise = nullptr;
  if (stochastic()) {
    if (!rng) throw unsupported("algorithm_type sde-dpmsolver needs a random source");
    Tensor& buf = reuse_buffer(noise_, sample.shape());
    rng->randn(buf.f32(), buf.numel());
    noise = buf.f32();
  }

  Tensor out = Tensor::empty(sample.shape());
  if (solver_order_ == 1 || lower_order_nums_ < 1 || lower_order_final)
    first_order_update(sample, noise, out);
  else if (solver_order_ == 2 || lower_order_nums_ < 2 || lower_order_second)
    second_order_update(sample, noise, out);
  else
    third_order_update(sample, noise, out);
  return out;
}

std::unique_ptr<Scheduler> make_dpmsolver_multistep(const SchedulerConfig& config) {
  return std::make_unique<DPMSolverMultistepScheduler>(config);
}

}  // namespace diffuse
