// "philox": the Philox4x32-10 stream AUTOMATIC1111's webui uses to reproduce torch's CUDA randn on
// any device (modules/rng_philox.py there, "NV" random source in its settings).
//
// Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) is counter-based:
// each output block is a pure function of (counter, key), so element i of a draw is computed
// from its index alone. A1111's layout, mirrored here: key = the 64-bit seed as two 32-bit halves
// (low first); counter = {offset, 0, element index, 0}, with the offset counting randn calls.
// Each element takes the first two words of its block through one branch of Box-Muller.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "random/random_source.h"

namespace diffuse {

class PhiloxGenerator final : public RandomSource {
 public:
  explicit PhiloxGenerator(uint64_t seed) : seed_(seed) {}

  std::string_view name() const override { return "philox"; }
  uint64_t seed() const { return seed_; }
  /// How many draws (randn or rand calls) this generator has made.
  uint64_t offset() const { return offset_; }

  /// A1111's Generator.randn: one Philox block per element, r = sqrt(-2 ln u) * sin(v) in double,
  /// rounded to float. Each call advances the offset by one, whatever n is.
  void randn(float* out, int64_t n) override;
  /// A1111 has no uniform draw; ours takes the same per-element blocks (and also advances the
  /// offset) and maps the first word's top 24 bits to [0, 1) exactly: (w >> 8) * 2^-24.
  void rand(float* out, int64_t n) override;
  using RandomSource::rand;
  using RandomSource::randn;

  /// The Philox4x32 bijection with 10 rounds (Random123's philox4x32_R(10, ...)).
  static std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter,
                                               std::array<uint32_t, 2> key);

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;

  std::array<uint32_t, 4> block(uint64_t index) const;
};

}  // namespace diffuse
