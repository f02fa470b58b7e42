#include "schedulers/multistep_common.h"

#include <algorithm>
#include <cmath>

#include "schedulers/numpy_math.h"

namespace diffuse {

AlphaSigma alpha_sigma_of(float sigma) {
  AlphaSigma r;
  r.alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  r.sigma = sigma * r.alpha;
  r.lambda = std::log(r.alpha) - std::log(r.sigma);
  return r;
}

std::vector<double> multistep_timesteps(const std::string& spacing, int last_timestep,
                                        int num_train_timesteps, int steps, int steps_offset) {
  check_inference_steps(steps, num_train_timesteps);
  std::vector<double> t;
  if (spacing == "linspace") {
    // np.linspace(0, last - 1, steps + 1).round()[::-1][:-1]; np.round rounds half to even, as
    // nearbyint does in the default rounding mode.
    const auto l = linspace(0, last_timestep - 1, steps + 1);
    for (int i = 0; i < steps; ++i) t.push_back(std::nearbyint(l[static_cast<size_t>(steps - i)]));
  } else if (spacing == "leading") {
    const int ratio = last_timestep / (steps + 1);
    for (int i = 0; i < steps; ++i) t.push_back(double((steps - i) * ratio + steps_offset));
  } else if (spacing == "trailing") {
    // np.arange(last, 0, -ratio).round() - 1. numpy fills a float arange as start + i * d with
    // d = (start + step) - start, which can differ from step in the last bit; keep that so values
    // that land on .5 round the same way.
    const double ratio = double(num_train_timesteps) / steps;
    const double start = last_timestep;
    const double d = (start + -ratio) - start;
    const auto n = static_cast<int>(std::ceil((0.0 - start) / -ratio));
    for (int i = 0; i < n; ++i) t.push_back(std::nearbyint(i == 0 ? start : start + i * d) - 1);
  } else {
    throw ConfigError("scheduler config: unsupported timestep_spacing \"" + spacing +
                      "\" (supported: linspace, leading, trailing)");
  }
  return t;
}

std::vector<double> log_sigmas_f32(const std::vector<double>& train_sigmas) {
  std::vector<double> l(train_sigmas.size());
  for (size_t i = 0; i < l.size(); ++i) l[i] = numpy_logf(static_cast<float>(train_sigmas[i]));
  return l;
}

std::vector<double> exponential_sigmas(double sigma_min, double sigma_max, int n) {
  auto s = linspace(std::log(sigma_max), std::log(sigma_min), n);
  for (auto& v : s) v = std::exp(v);
  return s;
}

int multistep_index_for_timestep(const std::vector<double>& timesteps, double t) {
  int first = -1;
  for (size_t i = 0; i < timesteps.size(); ++i) {
    if (timesteps[i] != t) continue;
    if (first >= 0) return static_cast<int>(i);
    first = static_cast<int>(i);
  }
  return first >= 0 ? first : static_cast<int>(timesteps.size()) - 1;
}

std::vector<double> multistep_timesteps_of_sigmas(const std::vector<double>& sigmas,
                                                  const std::vector<double>& log_sigmas,
                                                  bool round) {
  std::vector<double> ts;
  ts.reserve(sigmas.size());
  for (double s : sigmas) {
    const double t = sigma_to_t(s, log_sigmas);
    ts.push_back(round ? std::nearbyint(t) : std::trunc(t));
  }
  return ts;
}

MultistepSchedulerBase::MultistepSchedulerBase(const SchedulerConfig& c, const char* who,
                                               int max_order)
    : who_(who), schedule_(NoiseSchedule::from_config(c)) {
  if (c.boolean("rescale_betas_zero_snr", false)) {
    // diffusers keeps the last alphas_cumprod slightly above 0 so that sigma and lambda stay
    // finite at the zero-SNR timestep.
    schedule_.alphas_cumprod.back() = std::ldexp(1.0f, -24);
  }
  train_sigmas_ = sigmas_from_alphas_cumprod(schedule_.alphas_cumprod);

  solver_order_ = c.integer("solver_order", 2);
  if (solver_order_ < 1 || solver_order_ > max_order)
    throw unsupported("solver_order " + std::to_string(solver_order_) + " (supported: 1 to " +
                      std::to_string(max_order) + ")");
  prediction_ = read_prediction(c, {"epsilon", "sample", "v_prediction"});
  threshold_ = X0Clamp::from_config(c, false);
  threshold_.clip_sample = false;  // these solvers only threshold dynamically
  lower_order_final_ = c.boolean("lower_order_final", true);

  const bool karras = c.boolean("use_karras_sigmas", false);
  const bool exponential = c.boolean("use_exponential_sigmas", false);
  const bool beta = c.boolean("use_beta_sigmas", false);
  if (int(karras) + int(exponential) + int(beta) > 1)
    throw unsupported(
        "only one of use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas can be set");
  if (beta) throw unsupported("use_beta_sigmas is not supported");
  if (c.boolean("use_flow_sigmas", false)) throw unsupported("use_flow_sigmas is not supported");
  if (c.boolean("use_dynamic_shifting", false))
    throw unsupported("use_dynamic_shifting is not supported");
  sigma_spacing_ = karras        ? SigmaSpacing::Karras
                   : exponential ? SigmaSpacing::Exponential
                                 : SigmaSpacing::Interpolated;
  final_sigma_zero_ = c.choice("final_sigmas_type", "zero", {"zero", "sigma_min"}) == "zero";
  timestep_spacing_ = c.choice("timestep_spacing", "linspace", {"linspace", "leading", "trailing"});
  steps_offset_ = c.integer("steps_offset", 0);
}

ConfigError MultistepSchedulerBase::unsupported(const std::string& what) const {
  return ConfigError(std::string(who_) + ": " + what);
}

std::vector<double> MultistepSchedulerBase::train_sigmas_at(
    const std::vector<double>& timesteps) const {
  std::vector<double> sig;
  sig.reserve(timesteps.size());
  for (double t : timesteps) sig.push_back(train_sigmas_[static_cast<size_t>(t)]);
  return sig;
}

void MultistepSchedulerBase::set_schedule(std::vector<double> timesteps,
                                          const std::vector<double>& sigmas, float final_sigma) {
  timesteps_ = std::move(timesteps);
  sigmas_.clear();
  for (double s : sigmas) sigmas_.push_back(static_cast<float>(s));
  sigmas_.push_back(final_sigma);

  model_outputs_.assign(static_cast<size_t>(solver_order_), Tensor());
  lower_order_nums_ = 0;
  step_index_ = -1;
  has_begin_index_ = false;
}

void MultistepSchedulerBase::set_begin_index(int index) {
  Scheduler::set_begin_index(index);
  has_begin_index_ = true;
}

Tensor MultistepSchedulerBase::step(const Tensor& model_output, double timestep,
                                    const Tensor& sample, RandomSource* rng) {
  if (timesteps_.empty()) throw unsupported("call set_timesteps before step");
  check_step_args(model_output, sample, who_);
  if (step_index_ < 0)
    step_index_ =
        has_begin_index_ ? begin_index_ : multistep_index_for_timestep(timesteps_, timestep);
  if (step_index_ >= static_cast<int>(timesteps_.size()))
    throw unsupported("step called more often than there are timesteps");

  Tensor out = solver_step(model_output, sample, rng);

  if (lower_order_nums_ < solver_order_) ++lower_order_nums_;
  ++step_index_;
  return out;
}

Tensor MultistepSchedulerBase::convert_model_output(const Tensor& model_output,
                                                    const Tensor& sample,
                                                    bool data_prediction) const {
  const AlphaSigma as =
      alpha_sigma_of(static_cast<float>(sigmas_[static_cast<size_t>(step_index_)]));
  const float at = as.alpha, st = as.sigma;
  const Expr m = in(0), x = in(1);
  Expr e = m;
  if (data_prediction) {
    if (prediction_ == Prediction::Epsilon) e = (x - st * m) / at;
    if (prediction_ == Prediction::VPrediction) e = at * x - st * m;
    Tensor out = ops::evaluate(e, {model_output, sample});
    threshold_.apply(out);
    return out;
  }
  if (prediction_ == Prediction::Sample) e = (x - at * m) / st;
  if (prediction_ == Prediction::VPrediction) e = at * m + st * x;
  return ops::evaluate(e, {model_output, sample});
}

Tensor MultistepSchedulerBase::add_noise(const Tensor& original, const Tensor& noise,
                                         double timestep) const {
  const std::string who = std::string(who_) + " add_noise";
  require_f32_contiguous(original, (who + " original").c_str());
  require_f32_contiguous(noise, (who + " noise").c_str());
  if (original.shape() != noise.shape())
    throw ShapeError(who + ": noise " + noise.describe() + " does not match " +
                     original.describe());
  if (timesteps_.empty()) throw unsupported("call set_timesteps before add_noise");
  const int idx = !has_begin_index_  ? multistep_index_for_timestep(timesteps_, timestep)
                  : step_index_ >= 0 ? step_index_
                                     : begin_index_;
  if (idx < 0 || idx >= static_cast<int>(sigmas_.size()))
    throw ConfigError(who + ": begin index " + std::to_string(idx) + " is outside the schedule");
  const AlphaSigma as = alpha_sigma_of(static_cast<float>(sigmas_[static_cast<size_t>(idx)]));
  return ops::evaluate(as.alpha * in(0) + as.sigma * in(1), {original, noise});
}

}  // namespace diffuse
