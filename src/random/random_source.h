// Random sources: where initial latents and ancestral-sampler noise come from.
//
// Reproducing another tool's image for the same seed means reproducing its random stream, so each
// source mirrors one tool exactly:
//   "torch"  - PyTorch CPU torch.Generator().manual_seed(s) (diffusers' default; mt19937)
//   "numpy"  - NumPy's legacy np.random.RandomState(s).randn (Apple's CLI default)
//   "philox" - the Philox4x32-10 stream AUTOMATIC1111 uses to reproduce CUDA seeds on any device
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/tensor.h"

namespace diffuse {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual std::string_view name() const = 0;
  /// Standard normal samples for a tensor of n elements, in the exact order and values the mirrored
  /// library produces for one call with that many elements (torch treats n < 16 differently).
  virtual void randn(float* out, int64_t n) = 0;
  /// Uniform samples in [0, 1), as the mirrored library's rand produces them.
  virtual void rand(float* out, int64_t n) = 0;

  Tensor randn(const Shape& shape) {
    Tensor t = Tensor::empty(shape);
    randn(t.f32(), t.numel());
    return t;
  }
  Tensor rand(const Shape& shape) {
    Tensor t = Tensor::empty(shape);
    rand(t.f32(), t.numel());
    return t;
  }
};

/// name: "torch", "numpy" or "philox"; throws ConfigError naming the value otherwise.
std::unique_ptr<RandomSource> make_random_source(std::string_view name, uint64_t seed);

}  // namespace diffuse
