#include "random/numpy_generator.h"

#include <cmath>
#include <limits>

namespace diffuse {

NumpyGenerator::NumpyGenerator(uint64_t seed) {
  if (seed <= 0xffffffffu) {
    engine_.seed_genrand(static_cast<uint32_t>(seed));
  } else {
    const uint32_t key[2] = {static_cast<uint32_t>(seed & 0xffffffffu),
                             static_cast<uint32_t>(seed >> 32)};
    engine_.seed_by_array(key, 2);
  }
}

double NumpyGenerator::next_double() {
  const uint32_t a = engine_() >> 5;  // 27 bits
  const uint32_t b = engine_() >> 6;  // 26 bits
  return (static_cast<double>(a) * 67108864.0 + static_cast<double>(b)) / 9007199254740992.0;
}

double NumpyGenerator::next_gauss() {
  if (next_gauss_) {
    const double cached = *next_gauss_;
    next_gauss_.reset();
    return cached;
  }
  // Marsaglia's polar method: a point uniform in the unit disc (rejecting the rim and the centre)
  // gives two independent normals without sin/cos. NumPy returns f * x2 and keeps f * x1.
  double x1, x2, r2;
  do {
    x1 = 2.0 * next_double() - 1.0;
    x2 = 2.0 * next_double() - 1.0;
    // Separate statements: a fused multiply-add here would change the last bit (NumPy's baseline
    // x86-64 build has no FMA).
    const double x1_sq = x1 * x1;
    const double x2_sq = x2 * x2;
    r2 = x1_sq + x2_sq;
  } while (r2 >= 1.0 || r2 == 0.0);
  const double f = std::sqrt(-2.0 * std::log(r2) / r2);
  next_gauss_ = f * x1;
  return f * x2;
}

void NumpyGenerator::randn(float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(next_gauss());
}

void NumpyGenerator::rand(float* out, int64_t n) {
  constexpr float kBelowOne = 1.0f - std::numeric_limits<float>::epsilon() / 2;
  for (int64_t i = 0; i < n; ++i) {
    const float u = static_cast<float>(next_double());
    out[i] = u < 1.0f ? u : kBelowOne;
  }
}

}  // namespace diffuse
