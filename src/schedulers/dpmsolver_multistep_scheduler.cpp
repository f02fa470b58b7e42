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

Tensor DPMSolverMultistepScheduler::convert(const Tensor& model_output,
                                            const Tensor& sample) const {
  Tensor out = convert_model_output(model_output, sample, data_prediction());
  if (data_prediction() || !threshold_.thresholding) return out;
  // Noise prediction: threshold the implied x0, then recover epsilon from it.
  const AlphaSigma as =
      alpha_sigma_of(static_cast<float>(sigmas_[static_cast<size_t>(step_index_)]));
  const float at = as.alpha, st = as.sigma;
  Tensor x0 = ops::evaluate((in(0) - st * in(1)) / at, {sample, out});
  threshold_.apply(x0);
  return ops::evaluate((in(0) - at * in(1)) / st, {sample, x0});
}

// The update formulas below evaluate diffusers' expressions term by term in the same order, each
// scalar coefficient in float32, so every element rounds as torch's chain of tensor ops does.
// Inputs: 0 = sample, 1 = the newest model output, 2 = noise (SDE) or older outputs.

Tensor DPMSolverMultistepScheduler::first_order_update(const Tensor& sample,
                                                       const Tensor& noise) const {
  const auto i0 = static_cast<size_t>(step_index_);
  const AlphaSigma t = alpha_sigma_of(static_cast<float>(sigmas_[i0 + 1]));
  const AlphaSigma s = alpha_sigma_of(static_cast<float>(sigmas_[i0]));
  const float h = t.lambda - s.lambda;
  const Expr x = in(0), m = in(1), z = in(2);
  const Tensor& m0 = model_outputs_.back();
  switch (algorithm_) {
    case Algorithm::DpmSolverPP: {
      const float c1 = t.sigma / s.sigma, c2 = t.alpha * (std::exp(-h) - 1.0f);
      return ops::evaluate(c1 * x - c2 * m, {sample, m0});
    }
    case Algorithm::DpmSolver: {
      const float c1 = t.alpha / s.alpha, c2 = t.sigma * (std::exp(h) - 1.0f);
      return ops::evaluate(c1 * x - c2 * m, {sample, m0});
    }
    case Algorithm::SdeDpmSolverPP: {
      const float e2 = std::exp(-2.0f * h);
      const float c1 = t.sigma / s.sigma * std::exp(-h), c2 = t.alpha * (1.0f - e2);
      const float c3 = t.sigma * std::sqrt(1.0f - e2);
      return ops::evaluate(c1 * x + c2 * m + c3 * z, {sample, m0, noise});
    }
    case Algorithm::SdeDpmSolver:
      break;
  }
  const float c1 = t.alpha / s.alpha, c2 = 2.0f * (t.sigma * (std::exp(h) - 1.0f));
  const float c3 = t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f);
  return ops::evaluate(c1 * x - c2 * m + c3 * z, {sample, m0, noise});
}

Tensor DPMSolverMultistepScheduler::second_order_update(const Tensor& sample,
                                                        const Tensor& noise) const {
  const auto i0 = static_cast<size_t>(step_index_);
  const AlphaSigma t = alpha_sigma_of(static_cast<float>(sigmas_[i0 + 1]));
  const AlphaSigma s0 = alpha_sigma_of(static_cast<float>(sigmas_[i0]));
  const AlphaSigma s1 = alpha_sigma_of(static_cast<float>(sigmas_[i0 - 1]));
  const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda;
  const float r0 = h0 / h;
  const float inv_r0 = 1.0f / r0;
  const size_t k = model_outputs_.size();
  const Expr x = in(0), m0 = in(1), m1 = in(2), z = in(3);
  // D0 = m0, D1 = (1 / r0) * (m0 - m1).
  const Expr d1 = inv_r0 * (m0 - m1);
  std::vector<Tensor> inputs{sample, model_outputs_[k - 1], model_outputs_[k - 2]};
  if (noise.defined() && noise.numel() > 0) inputs.push_back(noise);
  switch (algorithm_) {
    case Algorithm::DpmSolverPP: {
      const float c1 = t.sigma / s0.sigma, c2 = t.alpha * (std::exp(-h) - 1.0f);
      if (!heun_) {
        const float c3 = 0.5f * c2;
        return ops::evaluate(c1 * x - c2 * m0 - c3 * d1, inputs);
      }
      const float c3 = t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f);
      return ops::evaluate(c1 * x - c2 * m0 + c3 * d1, inputs);
    }
    case Algorithm::DpmSolver: {
      const float c1 = t.alpha / s0.alpha, c2 = t.sigma * (std::exp(h) - 1.0f);
      const float c3 = heun_ ? t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f) : 0.5f * c2;
      return ops::evaluate(c1 * x - c2 * m0 - c3 * d1, inputs);
    }
    case Algorithm::SdeDpmSolverPP: {
      const float e2 = std::exp(-2.0f * h);
      const float c1 = t.sigma / s0.sigma * std::exp(-h), c2 = t.alpha * (1.0f - e2);
      const float c3 = heun_ ? t.alpha * ((1.0f - e2) / (-2.0f * h) + 1.0f) : 0.5f * c2;
      const float c4 = t.sigma * std::sqrt(1.0f - e2);
      return ops::evaluate(c1 * x + c2 * m0 + c3 * d1 + c4 * z, inputs);
    }
    case Algorithm::SdeDpmSolver:
      break;
  }
  const float c1 = t.alpha / s0.alpha, c2 = 2.0f * (t.sigma * (std::exp(h) - 1.0f));
  const float c3 =
      heun_ ? 2.0f * (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f)) : t.sigma * (std::exp(h) - 1.0f);
  const float c4 = t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f);
  return ops::evaluate(c1 * x - c2 * m0 - c3 * d1 + c4 * z, inputs);
}

Tensor DPMSolverMultistepScheduler::third_order_update(const Tensor& sample,
                                                       const Tensor& noise) const {
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
  const Expr x = in(0), m0 = in(1), m1 = in(2), m2 = in(3), z = in(4);
  const Expr d10 = inv_r0 * (m0 - m1), d11 = inv_r1 * (m1 - m2);
  const Expr d1 = d10 + w1 * (d10 - d11), d2 = w2 * (d10 - d11);
  std::vector<Tensor> inputs{sample, model_outputs_[k - 1], model_outputs_[k - 2],
                             model_outputs_[k - 3]};
  if (noise.defined() && noise.numel() > 0) inputs.push_back(noise);
  const float em = std::exp(-h), ep = std::exp(h);
  switch (algorithm_) {
    case Algorithm::DpmSolverPP: {
      const float c1 = t.sigma / s0.sigma, c2 = t.alpha * (em - 1.0f);
      const float c3 = t.alpha * ((em - 1.0f) / h + 1.0f);
      const float c4 = t.alpha * ((em - 1.0f + h) / (h * h) - 0.5f);
      return ops::evaluate(c1 * x - c2 * m0 + c3 * d1 - c4 * d2, inputs);
    }
    case Algorithm::DpmSolver: {
      const float c1 = t.alpha / s0.alpha, c2 = t.sigma * (ep - 1.0f);
      const float c3 = t.sigma * ((ep - 1.0f) / h - 1.0f);
      const float c4 = t.sigma * ((ep - 1.0f - h) / (h * h) - 0.5f);
      return ops::evaluate(c1 * x - c2 * m0 - c3 * d1 - c4 * d2, inputs);
    }
    case Algorithm::SdeDpmSolverPP:
    case Algorithm::SdeDpmSolver:  // rejected at construction
      break;
  }
  const float e2 = std::exp(-2.0f * h);
  const float c1 = t.sigma / s0.sigma * em, c2 = t.alpha * (1.0f - e2);
  const float c3 = t.alpha * ((1.0f - e2) / (-2.0f * h) + 1.0f);
  const float c4 = t.alpha * ((1.0f - e2 - 2.0f * h) / ((2.0f * h) * (2.0f * h)) - 0.5f);
  const float c5 = t.sigma * std::sqrt(1.0f - e2);
  return ops::evaluate(c1 * x + c2 * m0 + c3 * d1 + c4 * d2 + c5 * z, inputs);
}

Tensor DPMSolverMultistepScheduler::solver_step(const Tensor& model_output, const Tensor& sample,
                                                RandomSource* rng) {
  const int n = static_cast<int>(timesteps_.size());
  const bool lower_order_final =
      step_index_ == n - 1 &&
      (euler_at_final_ || (lower_order_final_ && n < 15) || final_sigma_zero_);
  const bool lower_order_second = step_index_ == n - 2 && lower_order_final_ && n < 15;

  // Shift the history: the oldest output drops out, the current step's converted output enters.
  std::rotate(model_outputs_.begin(), model_outputs_.begin() + 1, model_outputs_.end());
  model_outputs_.back() = convert(model_output, sample);

  Tensor noise;
  if (stochastic()) {
    if (!rng) throw unsupported("algorithm_type sde-dpmsolver needs a random source");
    noise = draw_noise(rng, sample, who_);
  }

  if (solver_order_ == 1 || lower_order_nums_ < 1 || lower_order_final)
    return first_order_update(sample, noise);
  if (solver_order_ == 2 || lower_order_nums_ < 2 || lower_order_second)
    return second_order_update(sample, noise);
  return third_order_update(sample, noise);
}

std::unique_ptr<Scheduler> make_dpmsolver_multistep(const SchedulerConfig& config) {
  return std::make_unique<DPMSolverMultistepScheduler>(config);
}

}  // namespace diffuse
