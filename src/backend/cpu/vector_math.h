// Element-wise math written so that the compiler vectorizes it (no library calls, and selects
// as bit masks: GCC 12 does not if-convert `c ? a : b` between float expressions), for the CPU
// kernels' hot loops: GroupNorm+SiLU, softmax and SiLU called libm's expf once per
// element, and summed in one double accumulator (one dependent add per element).
//
// Included only by the vector kernel sets (vector_kernels_impl.inl), which are compiled without
// FMA contraction: with fixed summation orders, every instruction set computes the same bits.
#pragma once

#include <cmath>
#include <cstdint>

namespace diffuse::cpu {
// File-local in every including file: each instruction-set file compiles its own copy (a shared
// inline definition would let the linker hand the AVX2 one to the baseline kernels). For the
// same reason nothing here instantiates a library template (__builtin_bit_cast, not
// std::bit_cast).
namespace {

/// c ? a : b, branch-free.
inline float select(bool c, float a, float b) {
  const uint32_t mask = 0u - static_cast<uint32_t>(c);
  return __builtin_bit_cast(
      float, (__builtin_bit_cast(uint32_t, a) & mask) | (__builtin_bit_cast(uint32_t, b) & ~mask));
}

constexpr float kExpHi = 88.72283935546875f, kExpLo = -87.33654022216797f;

/// exp(x) = 2^k * er for x already clamped to [kExpLo, kExpHi]: the range reduction and
/// polynomial both exps below share. (A NaN x gives a NaN er; k is zeroed only so that its
/// conversion to int is defined.)
struct ExpParts {
  int32_t k;
  float er;
};
inline ExpParts exp_parts(float clamped) {
  // Round to nearest by adding and removing 1.5 * 2^23 (no library call, so it vectorizes;
  // exact for |x * log2 e| < 2^22).
  constexpr float kRound = 12582912.f;
  const float n = (clamped * 1.44269504088896341f + kRound) - kRound;
  // ln2 split in two so that n * ln2_hi is exact.
  float r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return {static_cast<int32_t>(select(n > -200.f, n, 0.f)), p * (r * r) + r + 1.f};
}

/// e^x in float32 to within 2 ulp of the correctly rounded value (Cephes' expf: x = n ln2 + r
/// with |r| <= ln2/2, a degree-6 polynomial for e^r, scaled by 2^n through the exponent bits).
/// Overflows to +inf above 88.72, flushes to 0 below -87.33 (the smallest normal result); NaN
/// stays NaN.
inline float exp_f32(float x) {
  const float at_least_lo = select(x < kExpLo, kExpLo, x);
  const auto [k, er] = exp_parts(select(at_least_lo > kExpHi, kExpHi, at_least_lo));
  // 2^k in two factors: near the top of the range k = 128 has no float of its own.
  const int32_t k1 = k / 2, k2 = k - k1;
  const float result = er * __builtin_bit_cast(float, static_cast<uint32_t>(k1 + 127) << 23) *
                       __builtin_bit_cast(float, static_cast<uint32_t>(k2 + 127) << 23);
  return select(x > kExpHi, INFINITY, select(x < kExpLo, 0.f, result));
}

/// exp_f32(x) for x <= 0 (a max-subtracted softmax score), bit for bit, in fewer operations: no
/// overflow side, and 2^n in one factor (n >= -126 is a normal float; where the product is
/// subnormal both forms round the same exact value once). NaN in, NaN out.
inline float exp_nonpositive_f32(float x) {
  const auto [k, er] = exp_parts(select(x < kExpLo, kExpLo, x));
  const float result = er * __builtin_bit_cast(float, static_cast<uint32_t>(k + 127) << 23);
  return select(x < kExpLo, 0.f, result);
}

/// x * sigmoid(x) (torch.nn.functional.silu).
inline float silu_f32(float x) {
  return x / (1.f + exp_f32(-x));
}

/// The standard normal distribution function, Phi(x) = (1 + erf(x / sqrt 2)) / 2, through
/// erfc: with t = |x| / sqrt 2, erfc(t) = exp(-t^2) tau P(tau) for tau = 1 / (1 + 0.4 t), where
/// P is a degree-8 least-squares fit of erfc(t) e^(t^2) / tau over t >= 0 (1.3e-7 relative;
/// tools/math/fit_normal_cdf.py), and Phi = erfc(t) / 2 below zero, 1 - erfc(t) / 2 above. The
/// lower tail keeps its relative accuracy (1 + erf(x / sqrt 2) cancels there), and there is no
/// library call, so the loops around it vectorize. NaN stays NaN.
inline float normal_cdf_f32(float x) {
  const float z = x * 0.70710678118654752f;
  const float t = select(z < 0.f, -z, z);
  const float tau = 1.f / (1.f + 0.4f * t);
  float p = 0.050187286f;
  p = p * tau + -0.18261534f;
  p = p * tau + 0.168643847f;
  p = p * tau + -0.00525539881f;
  p = p * tau + 0.141277343f;
  p = p * tau + 0.168578178f;
  p = p * tau + 0.20783858f;
  p = p * tau + 0.225669771f;
  p = p * tau + 0.225675866f;
  const float half_erfc = 0.5f * (exp_f32(-(t * t)) * (tau * p));
  return select(z < 0.f, half_erfc, 1.f - half_erfc);
}

/// x * Phi(x): GELU without the tanh approximation (torch.nn.functional.gelu's default).
inline float gelu_f32(float x) {
  return x * normal_cdf_f32(x);
}

/// Sum of p[0, n) in double, in eight interleaved partial sums (added pairwise at the end) so
/// the additions vectorize; the order is fixed, so the result is too.
inline double sum_f64(const float* p, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(p[i + k]);
  for (int k = 0; i < n; ++i, ++k) acc[k] += static_cast<double>(p[i]);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/// Sum of (p[i] - mean)^2 over [0, n) in double, ordered as sum_f64.
inline double sum_sq_dev_f64(const float* p, int64_t n, double mean) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      const double d = static_cast<double>(p[i + k]) - mean;
      acc[k] += d * d;
    }
  for (int k = 0; i < n; ++i, ++k) {
    const double d = static_cast<double>(p[i]) - mean;
    acc[k] += d * d;
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/// Largest of p[0, n) (n >= 1), ignoring NaNs after p[0]. The softmax, its user, needs no NaN
/// check here: a NaN element makes its sum, and so every output, NaN either way. Written with
/// GCC's vector types (two 8-float accumulators): a scalar-array form did not vectorize, and at
/// a 4096-wide softmax a scalar max takes as long as the exponentials.
inline float max_f32(const float* p, int64_t n) {
  using Floats8 = float __attribute__((vector_size(32)));
  float m = p[0];
  int64_t i = 0;
  if (n >= 16) {
    Floats8 a, b;
    __builtin_memcpy(&a, p, sizeof a);
    __builtin_memcpy(&b, p + 8, sizeof b);
    for (i = 16; i + 16 <= n; i += 16) {
      Floats8 x, y;
      __builtin_memcpy(&x, p + i, sizeof x);
      __builtin_memcpy(&y, p + i + 8, sizeof y);
      a = x > a ? x : a;
      b = y > b ? y : b;
    }
    a = b > a ? b : a;
    for (int k = 0; k < 8; ++k) m = a[k] > m ? a[k] : m;
  }
  for (; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}

}  // namespace
}  // namespace diffuse::cpu
