// The CPU backend's bfloat16 kernels (WeightCompute::BF16) against their plain twins: the vector
// rounding against core/dtype.h's scalar rule, bit for bit, and the oneDNN bf16 matmul against the
// widened-operand sgemm path that CPUs without AVX512_BF16 take.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/dtype.h"

using namespace diffuse;

namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<uint16_t> random_bf16(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = float_to_bf16(d(g));
  return v;
}

}  // namespace

TEST(bf16_kernels, vector_rounding_matches_the_scalar_rule_bit_for_bit) {
  std::vector<float> values;
  std::mt19937 g(3);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 100000; ++i) values.push_back(from_bits(bits(g)));
  // Ties to even both ways, denormals, signed zeros, infinities, NaNs, the largest finite values.
  for (uint32_t u :
       {0x3f808000u, 0x3f818000u, 0x00000001u, 0x807fffffu, 0x00000000u, 0x80000000u, 0x7f800000u,
        0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x7f7fffffu, 0xff7fffffu, 0x7f7f8000u})
    values.push_back(from_bits(u));
  // Odd length: the vector loop's tail runs too.
  std::vector<uint16_t> got(values.size());
  floats_to_bf16(values.data(), int64_t(values.size()), got.data());
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &values[i], 4);
    ASSERT_EQ(got[i], float_to_bf16(values[i])) << "input bits " << std::hex << u;
  }
  // The same rounding kept in float32 (the operands of bf16 layers on CPUs without AVX512_BF16).
  std::vector<float> in_place = values;
  round_to_bf16_in_place(in_place.data(), int64_t(in_place.size()));
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t u, r;
    std::memcpy(&u, &values[i], 4);
    std::memcpy(&r, &in_place[i], 4);
    ASSERT_EQ(r, uint32_t(float_to_bf16(values[i])) << 16) << "input bits " << std::hex << u;
  }
}

TEST(bf16_kernels, gemm_matches_the_widened_float32_path) {
  struct Case {
    int64_t m, n, k;
    bool trans_b, accumulate;
    float alpha;
  };
  // A linear layer (B stored [n,k]), an im2col conv (B [k,n]), odd sizes, accumulation on C,
  // attention's scaled scores.
  for (const Case c :
       {Case{128, 320, 1280, true, false, 1.f}, Case{77, 45, 37, true, true, 1.f},
        Case{320, 1000, 2880, false, true, 1.f}, Case{13, 4489, 117, false, false, 1.f},
        Case{256, 300, 40, true, false, 0.158113883f}, Case{9, 10, 11, true, true, 0.5f}}) {
    SCOPED_TRACE(testing::Message() << c.m << "x" << c.n << "x" << c.k);
    const int64_t b_rows = c.trans_b ? c.n : c.k, b_cols = c.trans_b ? c.k : c.n;
    const auto a = random_bf16(size_t(c.m * c.k), 1), b = random_bf16(size_t(b_rows * b_cols), 2);
    std::vector<float> got(size_t(c.m * c.n), 0.5f), want = got;
    cpu::gemm_bf16(c.m, c.n, c.k, a.data(), c.k, b.data(), b_cols, c.trans_b, c.accumulate,
                   got.data(), c.n, c.alpha);
    cpu::gemm_bf16_widened(c.m, c.n, c.k, a.data(), c.k, b.data(), b_cols, c.trans_b, c.accumulate,
                           want.data(), c.n, c.alpha);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, double(std::fabs(got[i] - want[i])));
      scale = std::max(scale, double(std::fabs(want[i])));
    }
    // The same exact products; only the order of the float32 sums differs.
    EXPECT_LT(worst / scale, 1e-5);
  }
}
