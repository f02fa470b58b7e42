// The CPU backend's own Winograd F(4x4, 3x3) convolution (backend/cpu/winograd_conv2d.cpp): its
// tile transforms on every instruction set this CPU runs against the baseline, bit for bit, and
// the whole convolution against the reference backend's direct sum, on SD shapes and odd ones
// (partial edge tiles, uneven padding, bands that split and span images), at any thread count.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/winograd_conv2d.h"
#include "backend/cpu/winograd_transforms.h"
#include "backend/ops.h"
#include "common/fixtures.h"
#include "core/thread_pool.h"

using namespace diffuse;
using namespace diffuse::cpu;

namespace {

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& f : v) f = d(g);
  return v;
}

/// What every transform of `set` writes for fixed random inputs over 13 tiles (an odd count,
/// so the vector loops' remainders run too).
std::vector<float> transform_outputs(const WinogradTransforms& set) {
  constexpr int64_t kTiles = 13, kChannels = 11, kStride = 64;
  const int64_t width = 4 * kTiles + 4;
  const std::vector<float> rows = random_floats(static_cast<size_t>(6 * width), 1);
  const std::vector<float> products = random_floats(36 * kStride, 2);
  const std::vector<float> kernels = random_floats(9 * kChannels, 3);
  std::vector<float> scratch(static_cast<size_t>(winograd_scratch_floats(kTiles)));
  std::vector<double> weight_scratch(
      static_cast<size_t>(winograd_weight_scratch_doubles(kChannels)));
  std::vector<float> out(36 * kStride * 2 + 4 * width, 0.f);
  const float* row_ptrs[6];
  for (int k = 0; k < 6; ++k) row_ptrs[k] = rows.data() + k * width;
  set.input(row_ptrs, kTiles, out.data(), kStride, scratch.data());
  set.weights(kernels.data(), kChannels, out.data() + 36 * kStride, kStride, weight_scratch.data());
  float* out_rows[4];
  for (int r = 0; r < 4; ++r) out_rows[r] = out.data() + 72 * kStride + r * 4 * kTiles;
  set.output(products.data(), kStride, kTiles, 0.25f, out_rows, scratch.data());
  return out;
}

struct WinogradCase {
  const char* name;
  Shape x, w;
  ops::Conv2dParams p;
  WinogradBudget budget;
};

/// Ours against the reference backend's direct sum (accumulated in double).
double winograd_error(const WinogradCase& c) {
  const Tensor x = test::random_tensor(c.x, 11), w = test::random_tensor(c.w, 12);
  const Tensor b = test::random_tensor({c.w[0]}, 13);
  const Tensor want = ops::conv2d(x.on(kReference), w.on(kReference), &b, c.p);
  Tensor got = Tensor::empty(want.shape());
  winograd_conv2d(x, w, &b, c.p, got, c.budget);
  return test::rel_error(got, want.on(kCpu));
}

}  // namespace

TEST(winograd_transforms, every_instruction_set_computes_the_baseline_bits) {
  const std::vector<const WinogradTransforms*> sets = runnable_winograd_transforms();
  ASSERT_FALSE(sets.empty());
  EXPECT_STREQ(sets.front()->isa, "baseline");
  const std::vector<float> baseline = transform_outputs(*sets.front());
  for (const WinogradTransforms* set : sets) {
    SCOPED_TRACE(set->isa);
    const std::vector<float> got = transform_outputs(*set);
    EXPECT_EQ(std::memcmp(got.data(), baseline.data(), got.size() * sizeof(float)), 0);
  }
}

TEST(winograd_conv2d, matches_the_reference_on_sd_and_odd_shapes) {
  // `rows` rows of tiles per band: 36 x (C + O) x tile columns floats each.
  auto bands_of = [](int64_t rows, int64_t c, int64_t o, int64_t w) {
    return WinogradBudget{rows * 36 * (c + o) * ((w + 3) / 4)};
  };
  // Transformed weights of `o` output channels per block (the last block may hold fewer).
  auto blocks_of = [](int64_t c, int64_t o) { return WinogradBudget{.weight_floats = 36 * c * o}; };
  const WinogradCase cases[] = {
      {"unet_conv_in_64x64", {1, 4, 64, 64}, {320, 4, 3, 3}, ops::Conv2dParams::same(1), {}},
      {"vae_conv_out", {1, 128, 36, 40}, {3, 128, 3, 3}, ops::Conv2dParams::same(1), {}},
      {"odd_channels_partial_tiles_67x70",
       {1, 13, 67, 70},
       {11, 13, 3, 3},
       ops::Conv2dParams::same(1),
       {}},
      {"bands_of_one_tile_row_short_last",
       {1, 16, 30, 21},
       {24, 16, 3, 3},
       ops::Conv2dParams::same(1),
       bands_of(1, 16, 24, 21)},
      {"bands_spanning_the_batch",
       {3, 8, 13, 17},
       {5, 8, 3, 3},
       ops::Conv2dParams::same(1),
       bands_of(3, 8, 5, 17)},
      {"uneven_padding", {1, 6, 19, 23}, {7, 6, 3, 3}, {1, 0, 1, 2, 0}, {}},
      {"unpadded", {2, 5, 21, 18}, {4, 5, 3, 3}, {}, {}},
      // 11 output channels in blocks of 4, 4 and 3 sharing one band's transformed input.
      {"blocks_of_output_channels",
       {2, 13, 20, 22},
       {11, 13, 3, 3},
       ops::Conv2dParams::same(1),
       blocks_of(13, 5)},
      // Blocks of 3 output channels, each through bands of two tile rows.
      {"blocks_through_bands",
       {1, 9, 26, 19},
       {8, 9, 3, 3},
       ops::Conv2dParams::same(1),
       {2 * 36 * (9 + 3) * 5, 36 * 9 * 3}},
      {"vae_512ch_16x16", {1, 512, 16, 16}, {512, 512, 3, 3}, ops::Conv2dParams::same(1), {}},
  };
  for (const WinogradCase& c : cases) {
    SCOPED_TRACE(c.name);
    // The reference accumulates in double; the tile transforms add a few float roundings.
    EXPECT_LT(winograd_error(c), 2e-5);
  }
}

TEST(winograd_conv2d, gives_the_same_bits_at_any_thread_count) {
  const Tensor x = test::random_tensor({2, 24, 37, 45}, 21);
  const Tensor w = test::random_tensor({16, 24, 3, 3}, 22);
  const Tensor b = test::random_tensor({16}, 23);
  auto run = [&](int threads) {
    ThreadPool pool(threads);
    ThreadPoolScope scope(pool);
    Tensor out = Tensor::empty({2, 16, 37, 45});
    // Bands of three tile rows, blocks of 6, 6 and 4 output channels.
    winograd_conv2d(x, w, &b, ops::Conv2dParams::same(1), out,
                    {36 * (24 + 6) * 12 * 3, 36 * 24 * 6});
    return out;
  };
  const Tensor one = run(1), three = run(3);
  EXPECT_EQ(test::abs_error(one, three), 0.0);
}
