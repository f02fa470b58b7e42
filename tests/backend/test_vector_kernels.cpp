// The CPU backend's vector kernels: their math (backend/cpu/vector_math.h) against the C library,
// and every instruction set this CPU runs against the baseline, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/vector_kernels.h"
#include "backend/cpu/vector_math.h"

using namespace diffuse::cpu;

namespace {

/// Distance in units in the last place between two finite floats of the same sign.
int64_t ulps(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::abs(int64_t(ia) - int64_t(ib));
}

}  // namespace

TEST(vector_math, exp_is_within_two_ulp_of_the_c_library_over_its_range) {
  std::mt19937 g(7);
  std::uniform_real_distribution<float> d(-87.3f, 88.7f);
  int64_t worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const float x = d(g);
    worst = std::max(worst, ulps(exp_f32(x), std::exp(x)));
  }
  for (float x : {0.f, -0.f, 1.f, -1.f, 0.5f, 1e-7f, -1e-7f, 88.f, -87.f}) {
    SCOPED_TRACE(x);
    worst = std::max(worst, ulps(exp_f32(x), std::exp(x)));
  }
  EXPECT_LE(worst, 2);
  EXPECT_EQ(exp_f32(0.f), 1.f);
}

TEST(vector_math, exp_saturates_and_keeps_nan) {
  EXPECT_EQ(exp_f32(100.f), INFINITY);
  EXPECT_EQ(exp_f32(INFINITY), INFINITY);
  EXPECT_EQ(exp_f32(-100.f), 0.f);
  EXPECT_EQ(exp_f32(-INFINITY), 0.f);
  EXPECT_TRUE(std::isnan(exp_f32(NAN)));
  EXPECT_TRUE(std::isnan(silu_f32(NAN)));
  EXPECT_EQ(silu_f32(-200.f), -0.f);
  EXPECT_EQ(silu_f32(200.f), 200.f);
}

TEST(vector_math, the_softmax_exp_is_exp_bit_for_bit_where_it_applies) {
  // Every float from 0 down past the underflow point in steps of 1/4096 of the way, plus the
  // subnormal results' neighbourhood, -inf and NaN.
  std::vector<float> xs{0.f, -0.f, -1e-30f, -INFINITY, NAN, -87.3365f, -87.33654f, -87.4f, -86.9f};
  for (int i = 1; i <= 400000; ++i) xs.push_back(-88.f * float(i) / 400000.f);
  for (float x : xs) {
    const float a = exp_nonpositive_f32(x), b = exp_f32(x);
    if (std::isnan(b)) {
      EXPECT_TRUE(std::isnan(a)) << x;
    } else {
      ASSERT_EQ(std::memcmp(&a, &b, 4), 0) << x << ": " << a << " vs " << b;
    }
  }
}

TEST(vector_math, gelu_is_within_float_rounding_of_the_exact_erf_form) {
  // The exact value, x * erfc(-x / sqrt 2) / 2, in double; every float step of 1/2048 over
  // [-20, 20] and a few special points.
  double worst_abs = 0, worst_rel = 0;
  for (int i = -40960; i <= 40960; ++i) {
    const float x = float(i) / 2048.f;
    const double want = 0.5 * double(x) * std::erfc(-double(x) / std::sqrt(2.0));
    const double err = std::abs(double(gelu_f32(x)) - want);
    worst_abs = std::max(worst_abs, err / std::max(1.0, std::abs(double(x))));
    if (std::abs(want) > 1e-6) worst_rel = std::max(worst_rel, err / std::abs(want));
  }
  // About one float ulp: 1 + erf(x / sqrt 2) in float (torch's form) is off by up to 7% of the
  // value in the lower tail, where this one stays within a few millionths.
  EXPECT_LT(worst_abs, 1.5e-7);
  EXPECT_LT(worst_rel, 4e-6);
  EXPECT_EQ(gelu_f32(0.f), 0.f);
  EXPECT_EQ(gelu_f32(30.f), 30.f);
  EXPECT_EQ(gelu_f32(-30.f), -0.f);
  EXPECT_EQ(gelu_f32(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(gelu_f32(NAN)));
  EXPECT_NEAR(normal_cdf_f32(0.f), 0.5f, 6e-8);
}

TEST(vector_math, sums_and_max_match_a_plain_loop) {
  std::mt19937 g(3);
  std::normal_distribution<float> d(0.5f, 2.f);
  for (int64_t n : {1, 7, 8, 9, 77, 4096, 4099}) {
    SCOPED_TRACE(n);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(g);
    double sum = 0, sq = 0;
    float m = -INFINITY;
    for (float x : v) {
      sum += x;
      m = std::max(m, x);
    }
    for (float x : v) sq += (x - sum / double(n)) * (x - sum / double(n));
    EXPECT_NEAR(sum_f64(v.data(), n), sum, 1e-12 * (1 + std::abs(sum)) * double(n));
    EXPECT_NEAR(sum_sq_dev_f64(v.data(), n, sum / double(n)), sq, 1e-12 * sq * double(n));
    EXPECT_EQ(max_f32(v.data(), n), m);
    // max_f32 passes over a NaN; the softmax it serves still comes out all NaN, as torch's.
    v[static_cast<size_t>(n / 2)] = NAN;
    for (const VectorKernels* set : runnable_vector_kernels()) {
      std::vector<float> row = v;
      set->softmax_row(row.data(), n, n);
      for (float x : row) ASSERT_TRUE(std::isnan(x)) << set->isa;
    }
  }
}

// Every kernel set this CPU can run computes the baseline's bits (fixed summation order, no FMA
// contraction), so a result does not depend on the instruction set chosen at run time.
TEST(vector_kernels, every_instruction_set_computes_the_baselines_bits) {
  const std::vector<const VectorKernels*> sets = runnable_vector_kernels();
  ASSERT_FALSE(sets.empty());
  EXPECT_STREQ(sets.front()->isa, "baseline");
  EXPECT_EQ(&vector_kernels(), sets.back());
  std::mt19937 g(11);
  std::normal_distribution<float> d(0.f, 4.f);
  for (int64_t n : {1, 7, 8, 77, 1000, 4099}) {
    SCOPED_TRACE(n);
    std::vector<float> in(static_cast<size_t>(n)), gamma(in.size()), beta(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      in[i] = d(g);
      gamma[i] = d(g);
      beta[i] = d(g);
    }
    auto run = [&](const VectorKernels& k) {
      std::vector<float> out;
      std::vector<float> row = in;
      k.softmax_row(row.data(), n > 3 ? n - 3 : n, n);  // a causal tail of zeros
      out.insert(out.end(), row.begin(), row.end());
      row = in;
      const float m = k.max(in.data(), n);
      const double exp_sum = k.exp_shifted(row.data(), n > 3 ? n - 3 : n, n, m);
      out.insert(out.end(), row.begin(), row.end());
      out.push_back(m);
      out.push_back(static_cast<float>(exp_sum));
      const double sum = k.sum(in.data(), n), sq = k.sum_sq_dev(in.data(), n, 0.25);
      out.push_back(static_cast<float>(sum));
      out.push_back(static_cast<float>(sum - static_cast<double>(static_cast<float>(sum))));
      out.push_back(static_cast<float>(sq));
      for (bool silu : {false, true}) {
        row.assign(in.size(), 0.f);
        k.affine(in.data(), row.data(), n, 0.7f, -0.2f, silu);
        out.insert(out.end(), row.begin(), row.end());
      }
      k.normalize(in.data(), row.data(), n, 0.3f, 1.7f, gamma.data(), beta.data());
      out.insert(out.end(), row.begin(), row.end());
      row = in;
      k.sigmoid_gate(row.data(), n, 1.702f);
      out.insert(out.end(), row.begin(), row.end());
      k.gelu(in.data(), row.data(), n);
      out.insert(out.end(), row.begin(), row.end());
      k.gelu_gate(gamma.data(), in.data(), row.data(), n);
      out.insert(out.end(), row.begin(), row.end());
      return out;
    };
    const std::vector<float> want = run(*sets.front());
    for (const VectorKernels* k : sets) {
      SCOPED_TRACE(k->isa);
      const std::vector<float> got = run(*k);
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
    }
  }
}
