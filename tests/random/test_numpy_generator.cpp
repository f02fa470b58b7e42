// The "numpy" source. NumPy cannot be installed here, so the expected values are published ones,
// each with its source noted.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "random/mt19937.h"
#include "random/numpy_generator.h"

using namespace diffuse;

TEST(random_mt19937, init_genrand_matches_std_mt19937) {
  // std::mt19937 is the reference algorithm with init_genrand seeding; the C++ standard
  // ([rand.predef]) requires the 10000th output of a default-constructed one (seed 5489) to be
  // 4123659995, and its first output is the well-known 3499211612.
  Mt19937 ours;
  std::mt19937 ref;
  EXPECT_EQ(ours(), 3499211612u);
  ref();
  for (int i = 1; i < 9999; ++i) ASSERT_EQ(ours(), ref()) << "word " << i;
  EXPECT_EQ(ours(), 4123659995u);
}

TEST(random_mt19937, init_by_array_matches_reference_output) {
  // mt19937ar.out, the test output shipped with Matsumoto & Nishimura's mt19937ar.c: with
  // init_by_array({0x123, 0x234, 0x345, 0x456}, 4), genrand_int32 starts with these five.
  const uint32_t key[4] = {0x123, 0x234, 0x345, 0x456};
  Mt19937 mt;
  mt.seed_by_array(key, 4);
  for (uint32_t expected : {1067595299u, 955945823u, 477289528u, 4107218783u, 4228976476u})
    EXPECT_EQ(mt(), expected);
}

TEST(random_mt19937, init_by_array_single_word_matches_python_random) {
  // CPython's random.seed(n) for small n is init_by_array({n}, 1) and random.random() is the same
  // 53-bit construction as NumPy's random_sample. Published values: random.seed(0);
  // random.random() -> 0.8444218515250481, random.seed(42); random.random() -> 0.6394267984578837.
  for (auto [seed, expected] : {std::pair<uint32_t, double>{0, 0.8444218515250481},
                                std::pair<uint32_t, double>{42, 0.6394267984578837}}) {
    Mt19937 mt;
    mt.seed_by_array(&seed, 1);
    const uint32_t a = mt() >> 5, b = mt() >> 6;
    EXPECT_EQ((a * 67108864.0 + b) / 9007199254740992.0, expected) << "seed " << seed;
  }
}

TEST(random_numpy, randn_matches_published_seed0_values) {
  // np.random.seed(0); np.random.randn(5) -- the values in countless NumPy tutorials and in
  // NumPy's own docs examples: 1.764052345967664, 0.4001572083672233, 0.9787379841057392,
  // 2.240893199201458, 1.8675579901499675.
  const double expected[5] = {1.764052345967664, 0.4001572083672233, 0.9787379841057392,
                              2.240893199201458, 1.8675579901499675};
  NumpyGenerator g(0);
  for (double e : expected) EXPECT_NEAR(g.next_gauss(), e, 1e-15);

  NumpyGenerator f(0);
  std::vector<float> out(5);
  f.randn(out.data(), 5);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(out[static_cast<size_t>(i)], static_cast<float>(expected[i]));
}

TEST(random_numpy, random_sample_matches_published_seed0_values) {
  // np.random.seed(0); np.random.random_sample(3) (equivalently np.random.rand(3)):
  // 0.5488135039273248, 0.7151893663724195, 0.6027633760716439.
  const double expected[3] = {0.5488135039273248, 0.7151893663724195, 0.6027633760716439};
  NumpyGenerator g(0);
  for (double e : expected) EXPECT_EQ(g.next_double(), e);
  NumpyGenerator f(0);
  std::vector<float> out(3);
  f.rand(out.data(), 3);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(out[static_cast<size_t>(i)], static_cast<float>(expected[i]));
}

TEST(random_numpy, gauss_cache_carries_across_calls) {
  // randn(2) then randn(3) is the same stream as randn(5): the polar method's second value waits
  // in the cache between calls, as in RandomState.
  NumpyGenerator a(7), b(7);
  std::vector<float> whole(5), parts(5);
  a.randn(whole.data(), 5);
  b.randn(parts.data(), 2);
  b.randn(parts.data() + 2, 3);
  EXPECT_EQ(whole, parts);
}

TEST(random_numpy, large_seeds_use_both_halves) {
  // Seeds above 2^32 - 1 (which NumPy itself rejects) seed with both 32-bit halves, so they do
  // not collide with the small seed their low half names.
  NumpyGenerator big((uint64_t{1} << 32) + 5), small(5);
  EXPECT_NE(big.next_uint32(), small.next_uint32());
  const uint32_t key[2] = {5, 1};
  Mt19937 ref;
  ref.seed_by_array(key, 2);
  NumpyGenerator again((uint64_t{1} << 32) + 5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(again.next_uint32(), ref());
}
