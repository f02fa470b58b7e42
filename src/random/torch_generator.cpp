#include "random/torch_generator.h"

#include <bit>
#include <cmath>
#include <numbers>

namespace diffuse {

namespace {

// at::uniform_real_distribution<float>: keep the low 24 bits (float's mantissa digits) of a 32-bit
// word and scale by 2^-24, so every value is exact and lies in [0, 1).
inline float uniform_float(uint32_t word) {
  return static_cast<float>(word & 0xffffffu) * (1.0f / 16777216.0f);
}

// at::uniform_real_distribution<double>: low 53 bits of a 64-bit draw, scaled by 2^-53.
inline double uniform_double(uint64_t word) {
  return static_cast<double>(word & ((uint64_t{1} << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Torch's x86 builds run the blocked Box-Muller through AVX2 kernels whose log and sin/cos are
// the Cephes single-precision polynomials (ATen's avx_mathfun.h), not libm. Using libm instead
// lands within a few ulps; to be bit-exact we evaluate the same polynomials, in the same order,
// with a fused multiply-add exactly where torch's GCC build contracts a multiply into the
// following add (verified bit for bit against the golden fixture). Each step is a separate
// statement so no compiler contracts anything else. The lanes are independent, so scalar code
// computes what one AVX2 lane computes.

// Natural log for x in [2^-24, 1] (Box-Muller's 1 - u; never zero, negative or denormal).
inline float cephes_logf(float x) {
  // x = m * 2^e with m in [0.5, 1); the polynomial then gets 2m - 1 (m < sqrt(1/2), one less in
  // e) or m - 1, an argument within [-0.3, 0.42].
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  float e = static_cast<float>(static_cast<int32_t>(bits >> 23) - 0x7f);
  e = e + 1.0f;
  float m = std::bit_cast<float>((bits & 0x807fffffu) | 0x3f000000u);
  const bool small = m < 0.707106781186547524f;
  const float extra = small ? m : 0.0f;
  m = m - 1.0f;
  e = e - (small ? 1.0f : 0.0f);
  m = m + extra;  // 2m - 1 when small, else m - 1
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = std::fma(y, m, -1.1514610310e-1f);
  y = std::fma(y, m, 1.1676998740e-1f);
  y = std::fma(y, m, -1.2420140846e-1f);
  y = std::fma(y, m, 1.4249322787e-1f);
  y = std::fma(y, m, -1.6668057665e-1f);
  y = std::fma(y, m, 2.0000714765e-1f);
  y = std::fma(y, m, -2.4999993993e-1f);
  y = std::fma(y, m, 3.3333331174e-1f);
  y = y * m;
  const float e_low = e * -2.12194440e-4f;  // ln 2 split in two parts for extra precision
  y = std::fma(y, z, e_low);
  y = std::fma(-z, 0.5f, y);
  m = m + y;
  return std::fma(e, 0.693359375f, m);
}

// sin and cos of x in [0, 2pi): reduce by multiples of pi/4 (pi/4 in three parts), then pick the
// sine or cosine polynomial and the signs from the octant.
inline void cephes_sincosf(float x, float* sin_out, float* cos_out) {
  const int32_t j = (static_cast<int32_t>(x * 1.27323954473516f) + 1) & ~1;  // 4/pi; even octant
  const float y = static_cast<float>(j);
  x = std::fma(y, -0.78515625f, x);
  x = std::fma(y, -2.4187564849853515625e-4f, x);
  x = std::fma(y, -3.77489497744594108e-8f, x);
  const float z = x * x;

  float c = 2.443315711809948e-5f;
  c = std::fma(c, z, -1.388731625493765e-3f);
  c = std::fma(c, z, 4.166664568298827e-2f);
  c = c * z;
  const float half_z = z * 0.5f;
  c = std::fma(c, z, -half_z);
  c = c + 1.0f;

  float s = -1.9515295891e-4f;
  s = std::fma(s, z, 8.3321608736e-3f);
  s = std::fma(s, z, -1.6666654611e-1f);
  s = s * z;
  s = std::fma(s, x, x);

  const bool sine_poly = (j & 2) == 0;
  float sin_v = sine_poly ? s : c;
  float cos_v = sine_poly ? c : s;
  if (j & 4) sin_v = -sin_v;
  if (~(j - 2) & 4) cos_v = -cos_v;
  *sin_out = sin_v;
  *cos_out = cos_v;
}

// torch's normal_fill_16: pairs element j with j + 8 inside each block of 16 uniforms, turning
// (data[j], data[j+8]) into (r cos theta, r sin theta) in float32. (mean 0 and std 1 make torch's
// final fma(n, std, mean) exact, so it is left out.)
inline void box_muller_16(float* data) {
  const float two_pi = static_cast<float>(2.0 * std::numbers::pi);
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - data[j];  // [0, 1) -> (0, 1] so the log is finite
    const float u2 = data[j + 8];
    const float radius = std::sqrt(-2.0f * cephes_logf(u1));
    float s, c;
    cephes_sincosf(two_pi * u2, &s, &c);
    data[j] = radius * c;
    data[j + 8] = radius * s;
  }
}

}  // namespace

TorchGenerator::TorchGenerator(uint64_t seed)
    : engine_(static_cast<uint32_t>(seed & 0xffffffffu)), seed_(seed) {}

uint64_t TorchGenerator::random64() {
  const uint64_t hi = engine_();
  const uint64_t lo = engine_();
  return (hi << 32) | lo;
}

double TorchGenerator::normal_double() {
  if (next_double_normal_) {
    const double cached = *next_double_normal_;
    next_double_normal_.reset();
    return cached;
  }
  // Note the roles: u1 gives the angle and u2 the radius (torch's order, not the textbook's).
  const double u1 = uniform_double(random64());
  const double u2 = uniform_double(random64());
  // torch 2.x writes log1p(-u2); torch 1.x wrote log(1 - u2), the same value within an ulp.
  const double r = std::sqrt(-2.0 * std::log1p(-u2));
  const double theta = 2.0 * std::numbers::pi * u1;
  next_double_normal_ = r * std::sin(theta);
  return r * std::cos(theta);
}

void TorchGenerator::normal_fill(float* out, int64_t n) {
  // One uniform per element first, then Box-Muller over each complete block of 16 in place.
  for (int64_t i = 0; i < n; ++i) out[i] = uniform_float(engine_());
  for (int64_t i = 0; i + 16 <= n; i += 16) box_muller_16(out + i);
  if (n % 16 != 0) {
    // A ragged tail is not padded: torch draws 16 fresh uniforms over the last 16 elements
    // (overwriting normals already made there) and transforms that block again.
    float* tail = out + n - 16;
    for (int i = 0; i < 16; ++i) tail[i] = uniform_float(engine_());
    box_muller_16(tail);
  }
}

void TorchGenerator::randn(float* out, int64_t n) {
  if (n >= 16) {
    normal_fill(out, n);
    return;
  }
  // Small tensors go through at::normal_distribution<double>, one sample per element, and the
  // result is rounded to float.
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(normal_double());
}

void TorchGenerator::rand(float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = uniform_float(engine_());
}

}  // namespace diffuse
