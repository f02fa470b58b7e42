// The CPU kernels' vectorizable math (backend/cpu/vector_math.h) against the C library.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

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
    v[static_cast<size_t>(n / 2)] = NAN;
    EXPECT_TRUE(std::isnan(max_f32(v.data(), n)));
  }
}
