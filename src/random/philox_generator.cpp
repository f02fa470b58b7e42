#include "random/philox_generator.h"

#include <cmath>

namespace diffuse {

namespace {

// Random123's Philox4x32 multipliers and Weyl key increments (golden ratio, sqrt(3) - 1).
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

// The conversion constants exactly as rng_philox.py builds them: Python doubles rounded to
// float32 arrays (2.3283064e-10 rounds to exactly 2^-32), halved in float32 for the half-step
// offset that keeps u away from 0. NumPy promotes uint32 * float32 arrays to float64, so the
// arithmetic that uses them is double.
constexpr double kTwoPow32Inv = static_cast<double>(static_cast<float>(2.3283064e-10));
constexpr double kTwoPow32InvHalf = static_cast<double>(static_cast<float>(2.3283064e-10) / 2);
constexpr double kTwoPow32Inv2Pi =
    static_cast<double>(static_cast<float>(2.3283064e-10 * 6.2831855));
constexpr double kTwoPow32Inv2PiHalf =
    static_cast<double>(static_cast<float>(2.3283064e-10 * 6.2831855) / 2);

// The first of Box-Muller's two outputs, sqrt(-2 ln u) sin v, with u in (0, 1] and v in (0, 2pi)
// taken from the middle of the word's 2^-32-wide bin.
inline float box_muller(uint32_t x, uint32_t y) {
  // NumPy multiplies and adds in separate ufuncs: keep them separate statements (no fused
  // multiply-add, which would round once instead of twice).
  const double x_scaled = static_cast<double>(x) * kTwoPow32Inv;
  const double y_scaled = static_cast<double>(y) * kTwoPow32Inv2Pi;
  const double u = x_scaled + kTwoPow32InvHalf;
  const double v = y_scaled + kTwoPow32Inv2PiHalf;
  const double s = std::sqrt(-2.0 * std::log(u));
  return static_cast<float>(s * std::sin(v));
}

}  // namespace

std::array<uint32_t, 4> PhiloxGenerator::philox4x32_10(std::array<uint32_t, 4> c,
                                                       std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {  // the key is bumped between rounds, not before the first
      k[0] += kWeyl0;
      k[1] += kWeyl1;
    }
    const uint64_t p0 = uint64_t{kMul0} * c[0];
    const uint64_t p1 = uint64_t{kMul1} * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
  }
  return c;
}

std::array<uint32_t, 4> PhiloxGenerator::block(uint64_t index) const {
  // A1111 puts the element index in counter[2] (its comment: spill into counter[3] beyond 2^32
  // elements); its offset is at most a few thousand draws, so the low 32 bits hold it.
  return philox4x32_10({static_cast<uint32_t>(offset_), 0u, static_cast<uint32_t>(index),
                        static_cast<uint32_t>(index >> 32)},
                       {static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32)});
}

void PhiloxGenerator::randn(float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const auto g = block(static_cast<uint64_t>(i));
    out[i] = box_muller(g[0], g[1]);  // g[2] and g[3] are discarded, as in A1111
  }
  ++offset_;
}

void PhiloxGenerator::rand(float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const auto g = block(static_cast<uint64_t>(i));
    out[i] = static_cast<float>(g[0] >> 8) * (1.0f / 16777216.0f);
  }
  ++offset_;
}

}  // namespace diffuse
