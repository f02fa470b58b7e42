#include "schedulers/unipc_multistep_scheduler.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

namespace {

constexpr int kMaxOrder = 6;  // the R matrix below is kMaxOrder x kMaxOrder

// Solves the n x n system a x = b (Gaussian elimination with partial pivoting, in double; torch
// solves it in float32 with LAPACK, which agrees to a few float32 ulps).
std::array<float, kMaxOrder> solve(std::array<std::array<double, kMaxOrder>, kMaxOrder> a,
                                   std::array<double, kMaxOrder> b, int n) {
  for (int col = 0; col < n; ++col) {
    int pivot = col;
    for (int r = col + 1; r < n; ++r)
      if (std::fabs(a[size_t(r)][size_t(col)]) > std::fabs(a[size_t(pivot)][size_t(col)]))
        pivot = r;
    std::swap(a[size_t(col)], a[size_t(pivot)]);
    std::swap(b[size_t(col)], b[size_t(pivot)]);
    for (int r = col + 1; r < n; ++r) {
      const double f = a[size_t(r)][size_t(col)] / a[size_t(col)][size_t(col)];
      for (int k = col; k < n; ++k) a[size_t(r)][size_t(k)] -= f * a[size_t(col)][size_t(k)];
      b[size_t(r)] -= f * b[size_t(col)];
    }
  }
  std::array<float, kMaxOrder> x{};
  std::array<double, kMaxOrder> xd{};
  for (int r = n - 1; r >= 0; --r) {
    double v = b[size_t(r)];
    for (int k = r + 1; k < n; ++k) v -= a[size_t(r)][size_t(k)] * xd[size_t(k)];
    xd[size_t(r)] = v / a[size_t(r)][size_t(r)];
    x[size_t(r)] = static_cast<float>(xd[size_t(r)]);
  }
  return x;
}

}  // namespace

// What predictor and corrector share for one step from sigma index s0 to t of a given order
// (diffusers' multistep_uni_{p,c}_bh_update preamble), all in float32 as torch computes it.
struct UniPCMultistepScheduler::Coefficients {
  AlphaSigma t, s0;
  float h_phi_1 = 0;  // expm1(hh), hh = -h for data prediction, h for noise prediction
  float b_h = 0;      // B(h): hh for bh1, expm1(hh) for bh2
  int order = 1;
  std::array<float, kMaxOrder> rks{};  // (lambda_si - lambda_s0) / h for the order - 1 history
  // R (row i: rks^i) and b (b_i = h_phi_k * i! / B(h)), solved for the rho weights.
  std::array<std::array<double, kMaxOrder>, kMaxOrder> r{};
  std::array<double, kMaxOrder> b{};
};

UniPCMultistepScheduler::Coefficients UniPCMultistepScheduler::coefficients(int t, int s0,
                                                                            int order) const {
  Coefficients c;
  c.order = order;
  c.t = alpha_sigma_of(static_cast<float>(sigmas_[static_cast<size_t>(t)]));
  c.s0 = alpha_sigma_of(static_cast<float>(sigmas_[static_cast<size_t>(s0)]));
  const float h = c.t.lambda - c.s0.lambda;
  for (int i = 1; i < order; ++i) {
    const AlphaSigma si = alpha_sigma_of(static_cast<float>(sigmas_[static_cast<size_t>(s0 - i)]));
    c.rks[size_t(i - 1)] = (si.lambda - c.s0.lambda) / h;
  }
  c.rks[size_t(order - 1)] = 1.0f;
  const float hh = predict_x0_ ? -h : h;
  c.h_phi_1 = std::expm1(hh);
  float h_phi_k = c.h_phi_1 / hh - 1.0f;
  int factorial = 1;
  c.b_h = bh2_ ? std::expm1(hh) : hh;
  for (int i = 1; i <= order; ++i) {
    for (int k = 0; k < order; ++k) {
      float p = 1.0f;  // torch.pow(rks, i - 1)
      for (int e = 1; e < i; ++e) p *= c.rks[size_t(k)];
      c.r[size_t(i - 1)][size_t(k)] = p;
    }
    c.b[size_t(i - 1)] = h_phi_k * static_cast<float>(factorial) / c.b_h;
    factorial *= i + 1;
    h_phi_k = h_phi_k / hh - 1.0f / static_cast<float>(factorial);
  }
  return c;
}

UniPCMultistepScheduler::UniPCMultistepScheduler(const SchedulerConfig& c)
    : MultistepSchedulerBase(c, "UniPCMultistepScheduler", kMaxOrder) {
  predict_x0_ = c.boolean("predict_x0", true);
  // DPM-Solver's solver_type names are accepted and mean bh2, as in diffusers.
  bh2_ = c.choice("solver_type", "bh2", {"bh1", "bh2", "midpoint", "heun", "logrho"}) != "bh1";
  if (c.has("disable_corrector")) {
    const auto& d = c.json().at("disable_corrector");
    if (!d.is_array())
      throw ConfigError("scheduler config: 'disable_corrector' = " + d.dump() +
                        " is not a list of step indices");
    for (const auto& v : d) {
      if (!v.is_number_integer())
        throw ConfigError("scheduler config: 'disable_corrector' = " + d.dump() +
                          " is not a list of step indices");
      disable_corrector_.push_back(v.get<int>());
    }
  }
  if (c.has("solver_p")) throw unsupported("solver_p is not supported");
  if (c.has("shift_terminal")) throw unsupported("shift_terminal needs use_flow_sigmas");
  has_sigma_min_ = c.has("sigma_min");
  has_sigma_max_ = c.has("sigma_max");
  sigma_min_ = c.number("sigma_min", 0);
  sigma_max_ = c.number("sigma_max", 0);
  // With a zero final sigma, lambda is +inf in the last step: bh1's B(h) = -inf multiplies a zero
  // correction and noise prediction's h_phi_1 = +inf multiplies sigma_t = 0, so diffusers turns
  // the whole sample into NaN. Refuse such configs instead of producing NaN images.
  if (final_sigma_zero_ && !bh2_)
    throw unsupported(
        "solver_type \"bh1\" with final_sigmas_type \"zero\" ends in NaN (as in diffusers); set "
        "final_sigmas_type to \"sigma_min\"");
  if (final_sigma_zero_ && !predict_x0_)
    throw unsupported(
        "predict_x0 false with final_sigmas_type \"zero\" ends in NaN (as in diffusers); set "
        "final_sigmas_type to \"sigma_min\"");
}

void UniPCMultistepScheduler::set_timesteps(int steps) {
  const int n_train = schedule_.num_train_timesteps;
  auto ts = multistep_timesteps(timestep_spacing_, n_train, n_train, steps, steps_offset_);
  std::vector<double> sig;
  float last = 0.0f;
  if (sigma_spacing_ == SigmaSpacing::Interpolated) {
    sig = train_sigmas_at(ts);
    if (!final_sigma_zero_) last = static_cast<float>(train_sigmas_.front());
  } else {
    const double lo = has_sigma_min_ ? sigma_min_ : train_sigmas_.front();
    const double hi = has_sigma_max_ ? sigma_max_ : train_sigmas_.back();
    const bool karras = sigma_spacing_ == SigmaSpacing::Karras;
    sig = karras ? karras_sigmas(lo, hi, steps) : exponential_sigmas(lo, hi, steps);
    // Karras timesteps are rounded; the others truncate when stored as int64.
    ts = multistep_timesteps_of_sigmas(sig, log_sigmas_f32(train_sigmas_), karras);
    // Here "sigma_min" means the schedule's own last sigma, unlike the interpolated case.
    if (!final_sigma_zero_) last = static_cast<float>(sig.back());
  }
  set_schedule(std::move(ts), sig, last);
  this_order_ = 1;
  has_last_sample_ = false;
}

// UniP: x_t = (sigma_t / sigma_s0) x - alpha_t h_phi_1 m0 - alpha_t B(h) sum_k rho_k D1_k
// (data prediction; the noise-prediction form swaps the roles of alpha and sigma), with
// D1_k = (m_k - m0) / r_k over the order - 1 previous model outputs.
Tensor UniPCMultistepScheduler::predict(const Tensor& sample, int order) const {
  const Coefficients c = coefficients(step_index_ + 1, step_index_, order);
  const int k = order - 1;  // history terms
  std::array<float, kMaxOrder> rho{};
  if (k == 1)
    rho[0] = 0.5f;
  else if (k > 1)
    rho = solve(c.r, c.b, k);
  const float c1 = predict_x0_ ? c.t.sigma / c.s0.sigma : c.t.alpha / c.s0.alpha;
  const float scale = predict_x0_ ? c.t.alpha : c.t.sigma;
  const float c2 = scale * c.h_phi_1, c3 = scale * c.b_h;
  // Inputs: 0 = sample, 1 = m0 (newest output), 2 + i = the i-th older output.
  const size_t n_hist = model_outputs_.size();
  std::vector<Tensor> inputs{sample, model_outputs_[n_hist - 1]};
  for (int i = 0; i < k; ++i) inputs.push_back(model_outputs_[n_hist - 2 - size_t(i)]);
  const Expr x = in(0), m0 = in(1);
  const Expr base = c1 * x - c2 * m0;
  if (k == 0) return ops::evaluate(base, inputs);  // diffusers subtracts alpha_t * B(h) * 0
  Expr res = rho[0] * ((in(2) - m0) / c.rks[0]);
  for (int i = 1; i < k; ++i) res = res + rho[size_t(i)] * ((in(2 + i) - m0) / c.rks[size_t(i)]);
  return ops::evaluate(base - c3 * res, inputs);
}

// UniC: re-solves the previous step from `sample` (the sample that step started from) now that
// the model output at its end (`this_output`) is known; the history still ends with the previous
// step's output.
Tensor UniPCMultistepScheduler::correct(const Tensor& this_output, int order,
                                        const Tensor& sample) const {
  const Coefficients c = coefficients(step_index_, step_index_ - 1, order);
  const int k = order - 1;
  std::array<float, kMaxOrder> rho{};
  if (order == 1)
    rho[0] = 0.5f;
  else
    rho = solve(c.r, c.b, order);
  const float c1 = predict_x0_ ? c.t.sigma / c.s0.sigma : c.t.alpha / c.s0.alpha;
  const float scale = predict_x0_ ? c.t.alpha : c.t.sigma;
  const float c2 = scale * c.h_phi_1, c3 = scale * c.b_h;
  const float rho_t = rho[size_t(order - 1)];
  // Inputs: 0 = sample, 1 = m0, 2 = this_output, 3 + i = the i-th older output.
  const size_t n_hist = model_outputs_.size();
  std::vector<Tensor> inputs{sample, model_outputs_[n_hist - 1], this_output};
  for (int i = 0; i < k; ++i) inputs.push_back(model_outputs_[n_hist - 2 - size_t(i)]);
  const Expr x = in(0), m0 = in(1), mt = in(2);
  const Expr base = c1 * x - c2 * m0;
  const Expr d1_t = rho_t * (mt - m0);
  Expr total = d1_t;
  if (k > 0) {
    Expr res = rho[0] * ((in(3) - m0) / c.rks[0]);
    for (int i = 1; i < k; ++i) res = res + rho[size_t(i)] * ((in(3 + i) - m0) / c.rks[size_t(i)]);
    total = res + d1_t;
  }
  return ops::evaluate(base - c3 * total, inputs);
}

Tensor UniPCMultistepScheduler::solver_step(const Tensor& model_output, const Tensor& sample,
                                            RandomSource* rng) {
  (void)rng;  // deterministic
  const int n = static_cast<int>(timesteps_.size());

  const bool use_corrector = step_index_ > 0 && has_last_sample_ &&
                             std::find(disable_corrector_.begin(), disable_corrector_.end(),
                                       step_index_ - 1) == disable_corrector_.end();

  // The corrector still needs the history as it was, so shift the converted output in after it.
  Tensor converted = convert_model_output(model_output, sample, predict_x0_);

  // The prediction starts from the corrected sample, or the input as given; either way it is
  // kept as the next corrector's starting point.
  if (use_corrector) {
    if (last_sample_.shape() != sample.shape())
      throw ShapeError("UniPCMultistepScheduler: sample shape changed between steps");
    last_sample_ = correct(converted, this_order_, last_sample_);
  } else {
    last_sample_ = ops::evaluate(in(0), {sample});  // a copy: the caller owns `sample`
  }
  has_last_sample_ = true;

  std::rotate(model_outputs_.begin(), model_outputs_.begin() + 1, model_outputs_.end());
  model_outputs_.back() = std::move(converted);

  int order = lower_order_final_ ? std::min(solver_order_, n - step_index_) : solver_order_;
  this_order_ = std::min(order, lower_order_nums_ + 1);  // warm up on the first steps

  return predict(last_sample_, this_order_);
}

std::unique_ptr<Scheduler> make_unipc_multistep(const SchedulerConfig& config) {
  return std::make_unique<UniPCMultistepScheduler>(config);
}

}  // namespace diffuse
