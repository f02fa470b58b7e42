#include "schedulers/scheduler_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "diffuse/error.hpp"

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
  Tensor out = Tensor::empty(original.shape());
  const float* x = original.f32();
  const float* n = noise.f32();
  float* o = out.f32();
  for (int64_t i = 0; i < out.numel(); ++i) o[i] = sa * x[i] + sb * n[i];
  return out;
}

Tensor add_noise_sigma(float sigma, const Tensor& original, const Tensor& noise) {
  check_step_args(noise, original, "add_noise");
  Tensor out = Tensor::empty(original.shape());
  const float* x = original.f32();
  const float* n = noise.f32();
  float* o = out.f32();
  for (int64_t i = 0; i < out.numel(); ++i) o[i] = x[i] + n[i] * sigma;
  return out;
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
  float* p = x0.f32();
  const int64_t total = x0.numel();
  if (thresholding) {
    // s = quantile(|x0|, ratio) per batch item, clamped to [1, sample_max_value]; then
    // x0 = clamp(x0, -s, s) / s. torch.quantile interpolates linearly between order statistics.
    const int64_t batch = x0.ndim() > 0 ? x0.dim(0) : 1;
    const int64_t per = batch > 0 ? total / batch : 0;
    std::vector<float> a(static_cast<size_t>(per));
    for (int64_t b = 0; b < batch; ++b) {
      float* q = p + b * per;
      for (int64_t i = 0; i < per; ++i) a[static_cast<size_t>(i)] = std::fabs(q[i]);
      std::sort(a.begin(), a.end());
      // torch.quantile: the rank q * (n - 1) and the interpolation weight are float32 (q becomes
      // a tensor of the input's dtype), the interpolation is torch.lerp.
      const float rank =
          static_cast<float>(dynamic_thresholding_ratio) * static_cast<float>(per - 1);
      const float below = std::floor(rank);
      const float w = rank - below;
      const float lo = a[static_cast<size_t>(below)];
      const float hi = a[static_cast<size_t>(std::ceil(rank))];
      float s = w < 0.5f ? lo + w * (hi - lo) : hi - (hi - lo) * (1.0f - w);
      // torch.clamp(s, min=1, max=sample_max_value): the max wins when they cross.
      s = std::min(std::max(s, 1.0f), static_cast<float>(sample_max_value));
      for (int64_t i = 0; i < per; ++i) q[i] = std::clamp(q[i], -s, s) / s;
    }
  } else if (clip_sample) {
    const float r = static_cast<float>(clip_sample_range);
    for (int64_t i = 0; i < total; ++i) p[i] = std::clamp(p[i], -r, r);
  }
}

Tensor& TensorHistory::emplace(const Shape& shape) {
  if (slots_.empty()) slots_.resize(static_cast<size_t>(capacity_));
  head_ = (head_ + 1) % capacity_;
  Tensor& slot = slots_[static_cast<size_t>(head_)];
  if (!slot.defined() || slot.shape() != shape) slot = Tensor::empty(shape);
  count_ = std::min(count_ + 1, capacity_);
  return slot;
}

void TensorHistory::push(const Tensor& t) {
  const Tensor src = t.contiguous();
  Tensor& slot = emplace(src.shape());
  std::memcpy(slot.f32(), src.f32(), src.nbytes());
}

const Tensor& TensorHistory::operator[](int i) const {
  if (i < 0 || i >= count_) throw Error("TensorHistory: index out of range");
  return slots_[static_cast<size_t>((head_ - i + capacity_) % capacity_)];
}

Tensor predict_original_sample(Prediction prediction, const Tensor& model_output,
                               const Tensor& sample, float sa, float sb) {
  const int64_t n = sample.numel();
  const float* m = model_output.f32();
  const float* x = sample.f32();
  Tensor out = Tensor::empty(sample.shape());
  float* o = out.f32();
  for (int64_t i = 0; i < n; ++i) {
    switch (prediction) {
      case Prediction::Epsilon:
        o[i] = (x[i] - sb * m[i]) / sa;
        break;
      case Prediction::Sample:
        o[i] = m[i];
        break;
      case Prediction::VPrediction:
        o[i] = sa * x[i] - sb * m[i];
        break;
    }
  }
  return out;
}

}  // namespace diffuse
