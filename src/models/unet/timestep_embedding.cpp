#include "models/unet/timestep_embedding.h"

#include <cmath>

#include "diffuse/error.hpp"

namespace diffuse::unet {

Tensor timestep_embedding(const std::vector<double>& timesteps, int dim, bool flip_sin_to_cos,
                          double freq_shift, int max_period) {
  const int half = dim / 2;
  if (half <= 0 || static_cast<double>(half) == freq_shift)
    throw ConfigError("timestep embedding: dimension " + std::to_string(dim) +
                      " is too small for freq_shift " + std::to_string(freq_shift));
  // torch: exponent = -log(max_period) * arange(half, float32) / (half - shift); both scalars
  // enter the float32 kernels as float32.
  const auto neg_log = static_cast<float>(-std::log(static_cast<double>(max_period)));
  const auto denom = static_cast<float>(static_cast<double>(half) - freq_shift);
  std::vector<float> freq(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i)
    freq[size_t(i)] = std::exp(neg_log * static_cast<float>(i) / denom);

  const auto n = static_cast<int64_t>(timesteps.size());
  std::vector<float> table(static_cast<size_t>(n * dim), 0.f);  // odd dim: last column stays 0
  const int sin_at = flip_sin_to_cos ? half : 0, cos_at = flip_sin_to_cos ? 0 : half;
  for (int64_t r = 0; r < n; ++r) {
    const auto t = static_cast<float>(timesteps[size_t(r)]);  // timesteps.float()
    float* row = table.data() + r * dim;
    for (int i = 0; i < half; ++i) {
      const float arg = t * freq[size_t(i)];
      row[sin_at + i] = std::sin(arg);
      row[cos_at + i] = std::cos(arg);
    }
  }
  return Tensor::from_floats(table.data(), {n, dim});
}

}  // namespace diffuse::unet
