#include "schedulers/kdpm2_common.h"

#include <algorithm>
#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/multistep_common.h"
#include "schedulers/numpy_math.h"

namespace diffuse {

namespace {

// KDPM2's own defaults differ from the other schedulers' (and from NoiseSchedule's), and it has
// no rescale_betas_zero_snr: fill in the former and drop the latter before reading the schedule.
SchedulerConfig with_kdpm2_defaults(const SchedulerConfig& c) {
  nlohmann::json j = c.json().is_object() ? c.json() : nlohmann::json::object();
  if (!c.has("beta_start")) j["beta_start"] = 0.00085;
  if (!c.has("beta_end")) j["beta_end"] = 0.012;
  j.erase("rescale_betas_zero_snr");
  return SchedulerConfig(std::move(j));
}

}  // namespace

float sigma_to_t_f32(float sigma, const std::vector<float>& log_sigmas) {
  // np.log of the float32 value (numpy computes it, then torch the rest).
  const float log_sigma = numpy_logf(std::max(sigma, 1e-10f));
  const int n = static_cast<int>(log_sigmas.size());
  // The last training step whose log-sigma does not exceed log_sigma (0 when none), as
  // cumsum(dists >= 0).argmax() finds it.
  int low = 0;
  for (int i = 0; i < n; ++i)
    if (log_sigma - log_sigmas[static_cast<size_t>(i)] >= 0) low = i;
  low = std::min(low, n - 2);
  const int high = low + 1;
  const float lo = log_sigmas[static_cast<size_t>(low)], hi = log_sigmas[static_cast<size_t>(high)];
  float w = (lo - log_sigma) / (lo - hi);
  w = std::clamp(w, 0.0f, 1.0f);  // NaN stays NaN, as torch.clamp
  return (1.0f - w) * static_cast<float>(low) + w * static_cast<float>(high);
}

KDPM2SchedulerBase::KDPM2SchedulerBase(const SchedulerConfig& config, const char* who) : who_(who) {
  const SchedulerConfig c = with_kdpm2_defaults(config);
  NoiseSchedule schedule = NoiseSchedule::from_config(c);
  alphas_cumprod_ = std::move(schedule.alphas_cumprod);
  for (double l : log_sigmas_f32(sigmas_from_alphas_cumprod(alphas_cumprod_)))
    log_sigmas_.push_back(static_cast<float>(l));
  // "sample" is not implemented by diffusers' KDPM2 either.
  prediction_ = read_prediction(c, {"epsilon", "v_prediction"});
  timestep_spacing_ = c.choice("timestep_spacing", "linspace", {"linspace", "leading", "trailing"});
  steps_offset_ = c.integer("steps_offset", 0);
  karras_ = c.boolean("use_karras_sigmas", false);
  exponential_ = c.boolean("use_exponential_sigmas", false);
  const bool beta = c.boolean("use_beta_sigmas", false);
  if (int(karras_) + int(exponential_) + int(beta) > 1)
    throw ConfigError(std::string(who_) +
                      ": only one of use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas "
                      "can be set");
  if (beta) throw ConfigError(std::string(who_) + ": use_beta_sigmas is not supported");
}

void KDPM2SchedulerBase::set_timesteps(int steps) {
  const int n_train = static_cast<int>(alphas_cumprod_.size());
  check_inference_steps(steps, n_train);
  // Base timesteps, float32 as diffusers builds them with numpy.
  std::vector<double> ts;
  if (timestep_spacing_ == "linspace") {
    const auto l = linspace(0, n_train - 1, steps);
    for (int i = steps - 1; i >= 0; --i)
      ts.push_back(static_cast<float>(l[static_cast<size_t>(i)]));
  } else if (timestep_spacing_ == "leading") {
    const int ratio = n_train / steps;
    for (int i = steps - 1; i >= 0; --i)
      ts.push_back(static_cast<float>(i * ratio) + static_cast<float>(steps_offset_));
  } else {  // trailing: np.arange(n_train, 0, -ratio).round() - 1, as numpy fills an arange
    const double ratio = double(n_train) / steps;
    const double start = n_train, d = (start + -ratio) - start;
    const auto n = static_cast<int>(std::ceil(-start / -ratio));
    for (int i = 0; i < n; ++i)
      ts.push_back(static_cast<float>(std::nearbyint(i == 0 ? start : start + i * d)) - 1.0f);
  }

  std::vector<double> train_sigmas(alphas_cumprod_.size()), positions(alphas_cumprod_.size());
  for (size_t i = 0; i < train_sigmas.size(); ++i) {
    const float a = alphas_cumprod_[i];
    train_sigmas[i] = std::sqrt((1.0f - a) / a);
    positions[i] = double(i);
  }
  std::vector<double> sig = interp(ts, positions, train_sigmas);
  if (karras_ || exponential_) {
    // Re-spaced between the interpolated extremes; timesteps follow the sigmas (diffusers keeps
    // these as float64, rounded for Karras).
    sig = karras_ ? karras_sigmas(sig.back(), sig.front(), steps)
                  : exponential_sigmas(sig.back(), sig.front(), steps);
    const std::vector<double> log_sigmas(log_sigmas_.begin(), log_sigmas_.end());
    ts.clear();
    for (double s : sig) {
      const double t = sigma_to_t(s, log_sigmas);
      ts.push_back(karras_ ? std::nearbyint(t) : t);
    }
  }
  std::vector<float> base(sig.begin(), sig.end());
  base.push_back(0.0f);

  build_interpolated(base, ts);
  sigmas_f32_ = interleave(base);
  sigmas_.assign(sigmas_f32_.begin(), sigmas_f32_.end());
  const float max_sigma = *std::max_element(sigmas_f32_.begin(), sigmas_f32_.end());
  init_noise_sigma_ =
      timestep_spacing_ == "leading" ? std::sqrt(max_sigma * max_sigma + 1.0f) : max_sigma;
  step_index_ = -1;
  has_begin_index_ = false;
  first_order_ = true;
}

std::vector<float> KDPM2SchedulerBase::interleave(const std::vector<float>& x) {
  std::vector<float> out;
  out.reserve(2 * x.size());
  out.push_back(x.front());
  for (size_t i = 1; i < x.size(); ++i) {
    out.push_back(x[i]);
    out.push_back(x[i]);
  }
  out.push_back(x.back());
  return out;
}

void KDPM2SchedulerBase::set_begin_index(int index) {
  Scheduler::set_begin_index(index);
  has_begin_index_ = true;
}

int KDPM2SchedulerBase::index_for_timestep(double timestep) const {
  // The position of `timestep`, the second one when it repeats (so a restarted img2img schedule
  // does not skip a step); diffusers raises when it is absent.
  int first = -1;
  for (size_t i = 0; i < timesteps_.size(); ++i) {
    if (timesteps_[i] != timestep) continue;
    if (first >= 0) return static_cast<int>(i);
    first = static_cast<int>(i);
  }
  if (first < 0)
    throw ConfigError(std::string(who_) + ": timestep " + std::to_string(timestep) +
                      " is not in the schedule");
  return first;
}

void KDPM2SchedulerBase::init_step_index(double timestep) {
  if (timesteps_.empty())
    throw ConfigError(std::string(who_) + ": call set_timesteps before stepping");
  if (step_index_ >= 0) return;
  if (has_begin_index_) {
    step_index_ = begin_index_;
    return;
  }
  step_index_ = index_for_timestep(timestep);
}

Tensor KDPM2SchedulerBase::scale_model_input(const Tensor& sample, double timestep) {
  init_step_index(timestep);
  require_f32_contiguous(sample, who_);
  if (step_index_ >= static_cast<int>(timesteps_.size()))
    throw ConfigError(std::string(who_) + ": the schedule is exhausted");
  const float sigma = first_order_ ? sigmas_f32_[static_cast<size_t>(step_index_)]
                                   : midpoint_sigma(static_cast<size_t>(step_index_ - 1));
  const float scale = std::sqrt(sigma * sigma + 1.0f);
  return ops::evaluate(in(0) / scale, {sample});
}

Tensor KDPM2SchedulerBase::step(const Tensor& model_output, double timestep, const Tensor& sample,
                                RandomSource* rng) {
  check_step_args(model_output, sample, who_);
  init_step_index(timestep);
  const auto idx = static_cast<size_t>(step_index_);
  if (idx >= timesteps_.size())
    throw ConfigError(std::string(who_) + ": step called more often than there are timesteps");
  if (!first_order_ && idx == 0)
    throw ConfigError(std::string(who_) + ": second evaluation without a first");
  const size_t k = first_order_ ? idx : idx - 1;  // the step's first evaluation
  const float sigma = sigmas_f32_[k];
  const float sigma_mid = midpoint_sigma(k);

  const Expr x = in(0), x0 = in(1);
  const Tensor pred = predict_x0(model_output, sample, first_order_ ? sigma : sigma_mid);
  Tensor out;
  if (first_order_) {
    const float dt = sigma_mid - sigma;
    saved_sample_ = ops::evaluate(x, {sample});  // a copy: the caller owns `sample`
    out = ops::evaluate(x + (x - x0) / sigma * dt, {sample, pred});
    first_order_ = false;
  } else {
    if (saved_sample_.shape() != sample.shape())
      throw ShapeError(std::string(who_) + ": sample shape changed within a step");
    const float dt = second_order_target(k) - sigma;
    out = ops::evaluate(in(2) + (x - x0) / sigma_mid * dt, {sample, pred, saved_sample_});
    after_second_order(k, rng, out);
    first_order_ = true;
  }
  ++step_index_;
  return out;
}

Tensor KDPM2SchedulerBase::predict_x0(const Tensor& model_output, const Tensor& sample,
                                      float sigma_input) const {
  const Expr m = in(0), x = in(1);
  if (prediction_ == Prediction::Epsilon)
    return ops::evaluate(x - sigma_input * m, {model_output, sample});
  // v_prediction: m * (-s / sqrt(s^2 + 1)) + x / (s^2 + 1)
  const float s2 = sigma_input * sigma_input + 1.0f;
  const float c = -sigma_input / std::sqrt(s2);
  return ops::evaluate(m * c + x / s2, {model_output, sample});
}

Tensor KDPM2SchedulerBase::add_noise(const Tensor& original, const Tensor& noise,
                                     double timestep) const {
  if (timesteps_.empty())
    throw ConfigError(std::string(who_) + ": call set_timesteps before add_noise");
  int idx = -1;
  if (has_begin_index_) {
    idx = step_index_ >= 0 ? step_index_ : begin_index_;
  } else {
    idx = index_for_timestep(timestep);
  }
  if (idx < 0 || idx >= static_cast<int>(sigmas_f32_.size()))
    throw ConfigError(std::string(who_) + " add_noise: begin index " + std::to_string(idx) +
                      " is outside the schedule");
  return add_noise_sigma(sigmas_f32_[static_cast<size_t>(idx)], original, noise);
}

}  // namespace diffuse
