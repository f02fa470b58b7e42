// The "philox" source: Philox4x32-10 known answers, A1111's published example, and properties.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "random/philox_generator.h"

using namespace diffuse;

TEST(random_philox, known_answer_vectors) {
  // Random123's kat_vectors (the known-answer file shipped with the Random123 library of Salmon
  // et al.), philox4x32 with 10 rounds: counter and key all zero, then all ones.
  using C = std::array<uint32_t, 4>;
  EXPECT_EQ(PhiloxGenerator::philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (C{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(PhiloxGenerator::philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                           {0xffffffffu, 0xffffffffu}),
            (C{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
}

TEST(random_philox, matches_a1111_documented_example) {
  // modules/rng_philox.py (AUTOMATIC1111/stable-diffusion-webui), its module docstring:
  // Generator(seed=0).randn(shape=(3, 4)) is documented as printing these, which are torch.randn
  // on CUDA for seed 0 (curand computes Box-Muller in float32; rng_philox.py, and so we, compute
  // it in float64 as NumPy promotes uint32 * float32 arrays, then round). The two agree to a few
  // float32 ulps; measured here the largest difference is 2.4e-7.
  const float expected[12] = {-0.92466259f, -0.42534415f, -2.6438457f,  0.14518388f,
                              -0.12086647f, -0.57972564f, -0.62285122f, -0.32838709f,
                              -1.07454231f, -0.36314407f, -1.67105067f, 2.26550497f};
  PhiloxGenerator g(0);
  std::vector<float> out(12);
  g.randn(out.data(), 12);
  for (int i = 0; i < 12; ++i) EXPECT_NEAR(out[static_cast<size_t>(i)], expected[i], 4e-7) << i;
}

TEST(random_philox, deterministic_per_seed_and_draws_differ) {
  PhiloxGenerator a(1234), b(1234), c(1235);
  std::vector<float> a1(64), a2(64), b1(64), c1(64);
  a.randn(a1.data(), 64);
  a.randn(a2.data(), 64);
  b.randn(b1.data(), 64);
  c.randn(c1.data(), 64);
  EXPECT_EQ(a1, b1);  // same seed, same first draw
  EXPECT_NE(a1, a2);  // the offset moves on between draws
  EXPECT_NE(a1, c1);  // a different seed is a different stream
  EXPECT_EQ(a.offset(), 2u);
}

TEST(random_philox, element_depends_only_on_its_index) {
  // Counter-based: a longer draw starts with the shorter one (same offset), unlike torch's CPU.
  PhiloxGenerator a(9), b(9);
  std::vector<float> shortv(10), longv(1000);
  a.randn(shortv.data(), 10);
  b.randn(longv.data(), 1000);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(shortv[static_cast<size_t>(i)], longv[static_cast<size_t>(i)]);
}

TEST(random_philox, seeds_above_2_32_use_the_high_half) {
  PhiloxGenerator a((uint64_t{1} << 32) + 5), b(5);
  std::vector<float> x(16), y(16);
  a.randn(x.data(), 16);
  b.randn(y.data(), 16);
  EXPECT_NE(x, y);
}

TEST(random_philox, randn_moments_and_rand_range) {
  constexpr int64_t n = 100000;
  PhiloxGenerator g(42);
  std::vector<float> v(static_cast<size_t>(n));
  g.randn(v.data(), n);
  double sum = 0, sq = 0;
  for (float x : v) {
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sq += double(x) * x;
  }
  const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.015);  // ~5 standard errors (1/sqrt(1e5) = 0.0032)
  EXPECT_NEAR(sd, 1.0, 0.012);

  g.rand(v.data(), n);
  double usum = 0;
  for (float x : v) {
    ASSERT_GE(x, 0.0f);
    ASSERT_LT(x, 1.0f);
    usum += x;
  }
  EXPECT_NEAR(usum / n, 0.5, 0.005);
}
