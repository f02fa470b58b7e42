// "numpy": NumPy's legacy np.random.RandomState(seed), as Apple's ml-stable-diffusion CLI uses it
// by default (NumPyRandomSource.swift there mirrors the same randomkit code).
//
// randn is RandomState.randn (the polar Box-Muller "gauss" with its cached second value) and rand
// is RandomState.random_sample, both computed in double and rounded to float32.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "random/mt19937.h"
#include "random/random_source.h"

namespace diffuse {

class NumpyGenerator final : public RandomSource {
 public:
  /// A seed in [0, 2^32) seeds like RandomState(seed) (init_genrand). NumPy rejects larger integer
  /// seeds; we take RandomState([seed & 0xffffffff, seed >> 32]) for them (init_by_array on the
  /// two 32-bit halves), so every 64-bit seed works and the small ones stay NumPy-compatible.
  explicit NumpyGenerator(uint64_t seed);

  std::string_view name() const override { return "numpy"; }

  void randn(float* out, int64_t n) override;
  /// random_sample rounded to float; a double that rounds up to 1.0f is clamped to the largest
  /// float below 1, keeping [0, 1).
  void rand(float* out, int64_t n) override;
  using RandomSource::rand;
  using RandomSource::randn;

  /// One mt19937 word.
  uint32_t next_uint32() { return engine_(); }
  /// random_sample: 53 random bits from two words, (a >> 5) * 2^26 + (b >> 6), times 2^-53.
  double next_double();
  /// legacy gauss: one standard normal sample, using the cached one when there is one.
  double next_gauss();

 private:
  Mt19937 engine_;
  std::optional<double> next_gauss_;
};

}  // namespace diffuse
