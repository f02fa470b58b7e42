#include "schedulers/scheduler_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/ops.h"
#include "diffuse/error.hpp"
#include "random/random_source.h"

namespace diffuse {

Prediction read_prediction(const SchedulerConfig& c, std::initializer_list<const char*> allowed) {
  const std::string p = c.choice("prediction_type", "epsilon", allowed);
  if (p == "epsilon") return Prediction::Epsilon;
  if (p == "v_prediction") return Prediction::VPrediction;
  return Prediction::Sample;  // "sample" or "original_sample"
}

void check_step_args(const Tensor& model_output, const Tensor& sample, const char* who) {
  require_f32_contiguous(model_output, who);
  require_f32_contiguous(sample, who);
  if (model_output.shape() != sample.shape())
    throw ShapeError(std::string(who) + ": model output " + model_output.describe() +
                     " does not match sample " + sample.describe());
}

int train_index(double timestep, int num_train_timesteps, const char* who) {
  if (!(timestep >= 0 && timestep < num_train_timesteps) || timestep != std::floor(timestep))
    throw ConfigError(std::string(who) + ": timestep " + std::to_string(timestep) +
                      " is not an integer in [0, " + std::to_string(num_train_timesteps) + ")");
  return static_cast<int>(timestep);
}

Tensor add_noise_alpha(float alpha_cumprod, const Tensor& original, const Tensor& noise) {
  check_step_args(noise, original, "add_noise");
  // sqrt_alpha_prod * original + sqrt_one_minus_alpha_prod * noise, as diffusers' add_noise.
  const float sa = std::sqrt(alpha_cumprod), sb = std::sqrt(1.0f - alpha_cumprod);
  return ops::evaluate(sa * in(0) + sb * in(1), {original, noise});
}

Tensor add_noise_sigma(float sigma, const Tensor& original, const Tensor& noise) {
  check_step_args(noise, original, "add_noise");
  return ops::evaluate(in(0) + in(1) * sigma, {original, noise});
}

Tensor draw_noise(RandomSource* rng, const Tensor& like, const char* who) {
  if (!rng) throw ConfigError(std::string(who) + ": needs a random source");
  return rng->randn(like.shape()).on(like.device());
}

X0Clamp X0Clamp::from_config(const SchedulerConfig& c, bool clip_sample_default) {
  X0Clamp x;
  x.thresholding = c.boolean("thresholding", false);
  x.dynamic_thresholding_ratio = c.number("dynamic_thresholding_ratio", 0.995);
  x.sample_max_value = c.number("sample_max_value", 1.0);
  x.clip_sample = c.boolean("clip_sample", clip_sample_default);
  x.clip_sample_range = c.number("clip_sample_range", 1.0);
  if (x.thresholding && !(x.dynamic_thresholding_ratio > 0 && x.dynamic_thresholding_ratio <= 1))
    throw ConfigError("scheduler config: dynamic_thresholding_ratio " +
                      std::to_string(x.dynamic_thresholding_ratio) + " is not in (0, 1]");
  return x;
}

void X0Clamp::apply(Tensor& x0) const {
  if (thresholding) {
    ops::dynamic_threshold_(x0, static_cast<float>(dynamic_thresholding_ratio),
                            static_cast<float>(sample_max_value));
  } else if (clip_sample) {
    const float r = static_cast<float>(clip_sample_range);
    ops::clamp_(x0, -r, r);
  }
}

void TensorHistory::adopt(Tensor t) {
  if (slots_.empty()) slots_.resize(static_cast<size_t>(capacity_));
  head_ = (head_ + 1) % capacity_;
  slots_[static_cast<size_t>(head_)] = std::move(t);
  count_ = std::min(count_ + 1, capacity_);
}

void TensorHistory::push(const Tensor& t) {
  adopt(ops::evaluate(in(0), {t}));  // a copy on t's device
}

const Tensor& TensorHistory::operator[](int i) const {
  if (i < 0 || i >= count_) throw Error("TensorHistory: index out of range");
  return slots_[static_cast<size_t>((head_ - i + capacity_) % capacity_)];
}

Tensor predict_original_sample(Prediction prediction, const Tensor& model_output,
                               const Tensor& sample, float sa, float sb) {
  switch (prediction) {
    case Prediction::Epsilon:
      return ops::evaluate((in(1) - sb * in(0)) / sa, {model_output, sample});
    case Prediction::Sample:
      return ops::evaluate(in(0), {model_output});
    case Prediction::VPrediction:
      break;
  }
  return ops::evaluate(sa * in(1) - sb * in(0), {model_output, sample});
}

}  // namespace diffuse
