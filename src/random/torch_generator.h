// "torch": PyTorch's CPU generator, torch.Generator().manual_seed(seed), reproduced draw for draw.
//
// diffusers users seed with torch.Generator("cpu").manual_seed(s), so matching an image made there
// means matching this stream exactly: the mt19937 words, how torch turns them into floats, and
// which of torch's two normal algorithms a call takes (see torch_generator.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "random/mt19937.h"
#include "random/random_source.h"

namespace diffuse {

class TorchGenerator final : public RandomSource {
 public:
  /// manual_seed(seed): torch keeps the full 64-bit value as the generator's seed, but mt19937 is
  /// seeded with its low 32 bits only (so 2^32 + 5 draws the same stream as 5).
  explicit TorchGenerator(uint64_t seed);

  std::string_view name() const override { return "torch"; }
  uint64_t seed() const { return seed_; }

  /// torch.randn(n) in float32: n >= 16 takes the blocked float Box-Muller ("normal_fill"),
  /// n < 16 the scalar double path that shares a cached second sample across calls.
  void randn(float* out, int64_t n) override;
  /// torch.rand(n) in float32: the low 24 bits of one 32-bit word each, times 2^-24.
  void rand(float* out, int64_t n) override;
  using RandomSource::rand;
  using RandomSource::randn;

  /// CPUGeneratorImpl::random(): one mt19937 word.
  uint32_t random() { return engine_(); }
  /// CPUGeneratorImpl::random64(): two words, the first one as the high half.
  uint64_t random64();
  /// One sample of at::normal_distribution<double>(0, 1) (the n < 16 path), with torch's cache.
  double normal_double();

 private:
  Mt19937 engine_;
  uint64_t seed_;
  // Box-Muller makes two samples; torch keeps the second (r * sin) for the next scalar call, and
  // only manual_seed clears it. The blocked float path neither reads nor writes it.
  std::optional<double> next_double_normal_;

  void normal_fill(float* out, int64_t n);
};

}  // namespace diffuse
