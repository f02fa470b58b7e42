#include "schedulers/sigma_scheduler.h"

#include <algorithm>
#include <cmath>

#include "diffuse/error.hpp"
#include "schedulers/numpy_math.h"

namespace diffuse {

std::vector<double> sigma_timesteps(const std::string& spacing, int num_train_timesteps, int steps,
                                    int steps_offset) {
  check_inference_steps(steps, num_train_timesteps);
  std::vector<double> t(static_cast<size_t>(steps));
  if (spacing == "linspace") {
    // np.linspace(0, N - 1, steps, dtype=np.float32)[::-1]: computed in double, stored float32.
    const auto l = linspace(0, num_train_timesteps - 1, steps);
    for (int i = 0; i < steps; ++i)
      t[static_cast<size_t>(i)] = static_cast<float>(l[static_cast<size_t>(steps - 1 - i)]);
  } else if (spacing == "leading") {
    const int ratio = num_train_timesteps / steps;
    for (int i = 0; i < steps; ++i)
      t[static_cast<size_t>(i)] =
          static_cast<float>((steps - 1 - i) * ratio) + static_cast<float>(steps_offset);
  } else if (spacing == "trailing") {
    // np.arange(N, 0, -N / steps).round().astype(np.float32) - 1 (numpy's arange fill; an extra
    // entry numpy produces for some step counts is dropped, see spaced_timesteps).
    const double start = num_train_timesteps, step = -double(num_train_timesteps) / steps;
    const double delta = (start + step) - start;
    for (int i = 0; i < steps; ++i)
      t[static_cast<size_t>(i)] = static_cast<float>(np_round(start + i * delta)) - 1.0f;
  } else {
    throw ConfigError("scheduler config: unsupported timestep_spacing \"" + spacing +
                      "\" (supported: linspace, leading, trailing)");
  }
  return t;
}

SigmaScheduler::SigmaScheduler(const SchedulerConfig& c, const NoiseSchedule::Options& betas,
                               const SigmaScheduleOptions& options)
    : ns_(NoiseSchedule::from_config(c, betas)),
      prediction_(read_prediction(
          c, options.euler_extras
                 ? std::initializer_list<const char*>{"epsilon", "v_prediction", "sample",
                                                      "original_sample"}
                 : std::initializer_list<const char*>{"epsilon", "v_prediction", "sample"})),
      spacing_(c.choice("timestep_spacing", "linspace", {"linspace", "leading", "trailing"})),
      steps_offset_(c.integer("steps_offset", 0)) {
  if (betas.reads_rescale_zero_snr && c.boolean("rescale_betas_zero_snr", false)) {
    // Zero terminal SNR makes the last sigma infinite; diffusers nudges alphas_cumprod[-1] to
    // 2^-24 so sigma_max stays finite (about 4096).
    ns_.alphas_cumprod.back() = std::ldexp(1.0f, -24);
  }
  if (options.karras_and_exponential) {
    karras_ = c.boolean("use_karras_sigmas", false);
    exponential_ = c.boolean("use_exponential_sigmas", false);
    if (c.boolean("use_beta_sigmas", false))
      throw ConfigError("scheduler config: use_beta_sigmas is not supported");
    if (karras_ && exponential_)
      throw ConfigError(
          "scheduler config: use_karras_sigmas and use_exponential_sigmas are exclusive");
  }
  if (options.euler_extras) {
    if (c.has("sigma_min")) sigma_min_ = c.number("sigma_min", 0);
    if (c.has("sigma_max")) sigma_max_ = c.number("sigma_max", 0);
    interpolation_ = c.choice("interpolation_type", "linear", {"linear", "log_linear"});
    final_sigmas_ = c.choice("final_sigmas_type", "zero", {"zero", "sigma_min"});
    timestep_type_ = c.choice("timestep_type", "discrete", {"discrete", "continuous"});
  }
  // Before set_timesteps: the full training chain, as the diffusers constructors leave it.
  const auto train = sigmas_from_alphas_cumprod(ns_.alphas_cumprod);
  for (int t = ns_.num_train_timesteps - 1; t >= 0; --t) {
    timesteps_.push_back(t);
    sigmas_.push_back(train[static_cast<size_t>(t)]);
  }
  sigmas_.push_back(0.0);
}

void SigmaScheduler::build_schedule(int steps) {
  std::vector<double> ts = sigma_timesteps(spacing_, ns_.num_train_timesteps, steps, steps_offset_);
  const int n_train = ns_.num_train_timesteps;
  // Training sigmas as float32 (torch), their logs as numpy's float32 log computes them.
  const std::vector<double> train = sigmas_from_alphas_cumprod(ns_.alphas_cumprod);
  std::vector<double> log_sigmas(train.size());
  for (size_t i = 0; i < train.size(); ++i)
    log_sigmas[i] = numpy_logf(static_cast<float>(train[i]));

  std::vector<double> s;
  if (interpolation_ == "linear") {
    std::vector<double> xp(static_cast<size_t>(n_train));
    for (int i = 0; i < n_train; ++i) xp[static_cast<size_t>(i)] = i;
    s = interp(ts, xp, train);
  } else {
    // torch.linspace(log(sigma_max), log(sigma_min), steps + 1).exp() in float32. diffusers
    // keeps all steps + 1 values and still appends the final sigma, so the schedule never
    // reaches it; reproduced as is.
    const auto l = torch_linspace_f32(static_cast<float>(log_sigmas.back()),
                                      static_cast<float>(log_sigmas.front()), steps + 1);
    for (float v : l) s.push_back(std::exp(v));
  }
  if (karras_ || exponential_) {
    const double lo = sigma_min_ ? *sigma_min_ : s.back();
    const double hi = sigma_max_ ? *sigma_max_ : s.front();
    if (karras_) {
      s = karras_sigmas(lo, hi, steps);
    } else {
      const auto l = linspace(std::log(hi), std::log(lo), steps);
      s.clear();
      for (double v : l) s.push_back(std::exp(v));
    }
    ts.clear();
    for (double v : s) ts.push_back(static_cast<float>(sigma_to_t(v, log_sigmas)));
  }
  double last = 0.0;
  if (final_sigmas_ == "sigma_min") last = static_cast<float>(train.front());
  sigmas_.clear();
  for (double v : s) sigmas_.push_back(static_cast<float>(v));
  sigmas_.push_back(last);
  if (timestep_type_ == "continuous" && prediction_ == Prediction::VPrediction) {
    // EDM-style continuous timesteps c_noise = 0.25 ln(sigma) (Karras et al. 2022, Table 1).
    ts.clear();
    for (size_t i = 0; i + 1 < sigmas_.size(); ++i)
      ts.push_back(0.25f * std::log(static_cast<float>(sigmas_[i])));
  }
  timesteps_ = std::move(ts);
  step_index_.reset();
  begin_.reset();
  begin_index_ = 0;
}

double SigmaScheduler::init_noise_sigma() const {
  float m = 0;
  for (double v : sigmas_) m = std::max(m, static_cast<float>(v));
  if (spacing_ == "linspace" || spacing_ == "trailing") return m;
  return std::sqrt(m * m + 1.0f);
}

void SigmaScheduler::set_begin_index(int index) {
  if (index < 0 || index >= static_cast<int>(timesteps_.size()))
    throw ConfigError("set_begin_index: " + std::to_string(index) + " is outside the " +
                      std::to_string(timesteps_.size()) + " timesteps");
  Scheduler::set_begin_index(index);
  begin_ = index;
}

int SigmaScheduler::index_for_timestep(double timestep) const {
  const float t = static_cast<float>(timestep);
  int first = -1, count = 0;
  for (size_t i = 0; i < timesteps_.size(); ++i) {
    if (static_cast<float>(timesteps_[i]) != t) continue;
    if (count == 0) first = static_cast<int>(i);
    if (++count == 2) return static_cast<int>(i);
  }
  if (count == 0)
    throw ConfigError(std::string(class_name()) + ": timestep " + std::to_string(timestep) +
                      " is not in the schedule");
  return first;
}

int SigmaScheduler::step_index(double timestep) {
  if (!step_index_) step_index_ = begin_ ? *begin_ : index_for_timestep(timestep);
  if (*step_index_ + 1 >= static_cast<int>(sigmas_.size()))
    throw ConfigError(std::string(class_name()) + ": stepped past the end of the schedule");
  return *step_index_;
}

Tensor SigmaScheduler::scale_model_input(const Tensor& sample, double timestep) {
  require_f32_contiguous(sample, "scale_model_input");
  const float s = sigma(step_index(timestep));
  const float d = std::sqrt(s * s + 1.0f);
  return ops::evaluate(in(0) / d, {sample});
}

Tensor SigmaScheduler::add_noise(const Tensor& original, const Tensor& noise,
                                 double timestep) const {
  // diffusers: with no begin index, the sigma of the given timestep; otherwise the current step
  // (or the begin index before the first step).
  const int i = !begin_ ? index_for_timestep(timestep) : step_index_ ? *step_index_ : *begin_;
  return add_noise_sigma(sigma(i), original, noise);
}

SigmaScheduler::X0Form SigmaScheduler::x0_form(float s) const {
  X0Form f{prediction_, s, 0, 0};
  if (prediction_ == Prediction::VPrediction) {
    f.v_m = -s / std::sqrt(s * s + 1.0f);
    f.v_x = s * s + 1.0f;
  }
  return f;
}

}  // namespace diffuse
