#include "schedulers/multistep_common.h"

#include <algorithm>
#include <cmath>

#include "diffuse/error.hpp"
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
  if (steps < 1) throw ConfigError("steps must be at least 1 (got " + std::to_string(steps) + ")");
  if (steps > num_train_timesteps)
    throw ConfigError("steps " + std::to_string(steps) + " exceeds the scheduler's " +
                      std::to_string(num_train_timesteps) + " training timesteps");
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

Tensor& reuse_buffer(Tensor& buffer, const Shape& shape) {
  if (!buffer.defined() || buffer.numel() == 0 || buffer.shape() != shape ||
      buffer.dtype() != DType::F32)
    buffer = Tensor::empty(shape);
  return buffer;
}

}  // namespace diffuse
