// Palettization (diffuse convert --precision paletteN): 1-D k-means over the float16 histogram,
// packed N-bit indices, expansion back to float16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/palette.h"
#include "diffuse/error.hpp"

using namespace diffuse;

namespace {

Tensor gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.05f);
  Tensor t = Tensor::empty({n}, DType::F32);
  for (int64_t i = 0; i < n; ++i) t.f32()[i] = normal(rng);
  return t;
}

Tensor expand(const PalettizedTensor& p) {
  return expand_palette(p.palette.data(), int64_t{1} << p.bits, p.groups, p.packed.data(),
                        p.packed.size(), p.bits, p.shape);
}

double mean_abs_error(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(DType::F32), y = b.to(DType::F32);
  double s = 0;
  for (int64_t i = 0; i < x.numel(); ++i) s += std::fabs(double(x.f32()[i]) - double(y.f32()[i]));
  return s / double(x.numel());
}

}  // namespace

TEST(palette, few_distinct_values_round_trip_exactly_at_every_width) {
  for (int bits = 1; bits <= 8; ++bits) {
    const int64_t n = 1001;  // not a multiple of 8: the last byte is partly used
    Tensor t = Tensor::empty({7, 11, 13}, DType::F32);
    for (int64_t i = 0; i < n; ++i) t.f32()[i] = static_cast<float>(i % (1 << bits)) * 0.25f;
    const PalettizedTensor p = palettize(t, bits);
    EXPECT_EQ(p.packed.size(), static_cast<size_t>((n * bits + 7) / 8));
    const Tensor back = expand(p);
    EXPECT_EQ(back.shape(), t.shape());
    EXPECT_EQ(mean_abs_error(back, t), 0.0) << bits;
  }
}

TEST(palette, kmeans_beats_a_uniform_grid_and_more_bits_beat_fewer) {
  const Tensor t = gaussian(20000, 7);
  double previous = INFINITY;
  for (int bits : {2, 4, 6, 8}) {
    const PalettizedTensor p = palettize(t, bits);
    ASSERT_EQ(p.palette.size(), size_t{1} << bits);
    for (size_t i = 1; i < p.palette.size(); ++i)
      EXPECT_LT(half_to_float(p.palette[i - 1]), half_to_float(p.palette[i]));
    const double err = mean_abs_error(expand(p), t);
    EXPECT_LT(err, previous) << bits;
    previous = err;
    // The same number of levels spread evenly over [min, max].
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < t.numel(); ++i)
      lo = std::min(lo, t.f32()[i]), hi = std::max(hi, t.f32()[i]);
    const double step = (hi - lo) / ((1 << bits) - 1);
    Tensor uniform = Tensor::empty(t.shape(), DType::F32);
    for (int64_t i = 0; i < t.numel(); ++i)
      uniform.f32()[i] = static_cast<float>(lo + std::round((t.f32()[i] - lo) / step) * step);
    EXPECT_LT(err, mean_abs_error(uniform, t)) << bits;
  }
}

TEST(palette, heavy_values_do_not_waste_table_entries) {
  // Half the values exactly zero: one float16 code heavier than many quantiles. Its repeated
  // starting centroids must move on to other values, so (nearly) every entry ends up distinct.
  Tensor t = gaussian(4096, 3);
  for (int64_t i = 0; i < t.numel(); i += 2) t.f32()[i] = 0.f;
  const PalettizedTensor p = palettize(t, 8);
  std::vector<uint16_t> distinct = p.palette;
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  EXPECT_GE(distinct.size(), 250u);
  const PalettizedTensor p7 = palettize(t, 7);
  EXPECT_LT(mean_abs_error(expand(p), t), mean_abs_error(expand(p7), t));
}

// Core ML's per_grouped_channel palettization: a table per group of output channels follows
// channels whose scales differ, where one table for the tensor cannot.
TEST(palette, a_table_per_group_of_channels_follows_each_groups_values) {
  // 10 output channels of 3x3x5 values: scale 1 for channels 0-3, 1e-2 for 4-7, 1e-4 for 8-9.
  Tensor t = Tensor::empty({10, 5, 3, 3}, DType::F32);
  const Tensor noise = gaussian(t.numel(), 5);
  const int64_t per_row = t.numel() / 10;
  for (int64_t i = 0; i < t.numel(); ++i)
    t.f32()[i] = noise.f32()[i] * std::pow(10.f, -2.f * static_cast<float>(i / per_row / 4));
  const PalettizedTensor whole = palettize(t, 4), grouped = palettize(t, 4, 4);
  EXPECT_EQ(whole.groups, 1);
  EXPECT_EQ(grouped.groups, 3);  // channels 0-3, 4-7, 8-9
  EXPECT_EQ(palette_group_rows(10, 3), 4);
  EXPECT_EQ(grouped.palette.size(), 3u * 16u);
  EXPECT_EQ(grouped.packed.size(), whole.packed.size());
  const Tensor back = expand(grouped);
  EXPECT_EQ(back.shape(), t.shape());
  // Relative to each channel's scale, the grouped tables are far closer on the small channels.
  double whole_error = 0, grouped_error = 0;
  const Tensor w = expand(whole);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double scale = std::pow(10.0, -2.0 * double(i / per_row / 4));
    whole_error += std::fabs(double(half_to_float(w.data_as<uint16_t>()[i])) - t.f32()[i]) / scale;
    grouped_error +=
        std::fabs(double(half_to_float(back.data_as<uint16_t>()[i])) - t.f32()[i]) / scale;
  }
  EXPECT_LT(grouped_error, 0.5 * whole_error);
  // One channel per table: a channel of <= 16 distinct values comes back exactly.
  Tensor steps = Tensor::empty({6, 40}, DType::F32);
  for (int64_t i = 0; i < steps.numel(); ++i)
    steps.f32()[i] = static_cast<float>(i % 16) * std::pow(2.f, static_cast<float>(i / 40));
  const PalettizedTensor per_channel = palettize(steps, 4, 1);
  EXPECT_EQ(per_channel.groups, 6);
  EXPECT_EQ(mean_abs_error(expand(per_channel), steps), 0.0);
  EXPECT_GT(mean_abs_error(expand(palettize(steps, 4)), steps), 0.0);
}

TEST(palette, bad_widths_and_corrupt_indices_are_errors) {
  const Tensor t = gaussian(16, 1);
  EXPECT_THROW(palettize(t, 0), ConfigError);
  EXPECT_THROW(palettize(t, 9), ConfigError);
  PalettizedTensor p = palettize(t, 4);
  p.packed.pop_back();
  EXPECT_THROW(expand(p), FileError);
  Tensor nan = Tensor::full({4}, NAN);
  EXPECT_THROW(palettize(nan, 4), ShapeError);
  EXPECT_THROW(palettize(t, 4, -1), ConfigError);
  PalettizedTensor too_many_tables = palettize(t, 4, 1);  // 16 rows of one value
  too_many_tables.groups = 17;
  EXPECT_THROW(expand(too_many_tables), FileError);
}
