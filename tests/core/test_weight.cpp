// Layer matrices in their compact forms (core/weight.h): what each precision stores, and that
// widening gives back exactly the values a float32 tensor conversion gives.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/dtype.h"
#include "core/weight.h"
#include "diffuse/error.hpp"

using namespace diffuse;

namespace {

Tensor random_f32(const Shape& s, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, 0.05f);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(g);
  return t;
}

std::vector<float> values(const Tensor& t) {
  return t.to(DType::F32).to_vector();
}

}  // namespace

TEST(weight, precision_names_round_trip_and_unknown_names_are_refused) {
  for (const char* name : {"f32", "f16", "bf16", "int8"}) {
    WeightPrecision p{};
    ASSERT_TRUE(parse_weight_precision(name, &p)) << name;
    EXPECT_EQ(weight_precision_name(p), name);
  }
  WeightPrecision p{};
  EXPECT_FALSE(parse_weight_precision("fp16", &p));
  EXPECT_FALSE(parse_weight_precision("", &p));
}

TEST(weight, f32_precision_keeps_16_bit_tensors_as_they_are) {
  const Tensor half = random_f32({5, 3}, 1).to(DType::F16);
  const Weight w = Weight::from_tensor(half, WeightPrecision::F32);
  EXPECT_EQ(w.dtype(), DType::F16);
  EXPECT_EQ(w.values.raw(), half.raw()) << "no copy of a 16-bit matrix";
  EXPECT_EQ(w.nbytes(), half.nbytes());
}

TEST(weight, widening_equals_the_tensor_conversion_for_every_16_bit_value_kind) {
  // Odd length (the vector path's tail), subnormals, infinities, signed zero, the extremes.
  Tensor t = random_f32({3, 67}, 2);
  float* v = t.f32();
  v[0] = 6.0e-8f;
  v[1] = -3.0e-5f;
  v[2] = std::numeric_limits<float>::infinity();
  v[3] = -0.f;
  v[4] = 65504.f;
  v[5] = -1e30f;
  for (DType dt : {DType::F16, DType::BF16}) {
    const Tensor stored = t.to(dt);
    const Weight w = Weight::from_tensor(stored, WeightPrecision::F32);
    const std::vector<float> got = w.to_f32().to_vector(), want = values(stored);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(std::signbit(got[i]), std::signbit(want[i])) << i;
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
  }
}

// The F16C path (taken at run time where the CPU has it) and the portable one agree on every
// half-precision value, and on rounding float32 values that fall between two halves.
TEST(weight, f16_conversions_agree_with_the_portable_ones_for_every_value) {
  Tensor halves = Tensor::empty({256, 256}, DType::F16);
  auto* h = halves.data_as<uint16_t>();
  for (int i = 0; i < 65536; ++i) h[i] = static_cast<uint16_t>(i);
  const std::vector<float> widened =
      Weight::from_tensor(halves, WeightPrecision::F32).to_f32().to_vector();
  for (int i = 0; i < 65536; ++i) {
    const float want = half_to_float(static_cast<uint16_t>(i));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(widened[size_t(i)])) << i;
    } else {
      EXPECT_EQ(0, std::memcmp(&widened[size_t(i)], &want, 4)) << i;
    }
  }
  // Midpoints and near-midpoints between neighbouring halves (ties go to even).
  Tensor between = Tensor::empty({1024, 63});
  for (int64_t i = 0; i < between.numel(); ++i) {
    const float lo = half_to_float(static_cast<uint16_t>(i * 31 % 0x7c00));
    const float hi = half_to_float(static_cast<uint16_t>(i * 31 % 0x7c00 + 1));
    between.f32()[i] = lo + (hi - lo) * (i % 3 == 0 ? 0.5f : (i % 3 == 1 ? 0.4999f : 0.5001f));
  }
  const Weight narrowed = Weight::from_tensor(between, WeightPrecision::F16);
  const auto* got = narrowed.values.data_as<uint16_t>();
  for (int64_t i = 0; i < between.numel(); ++i)
    EXPECT_EQ(got[i], float_to_half(between.f32()[i])) << i;
}

TEST(weight, f16_and_bf16_precisions_round_float32_matrices_to_nearest_even) {
  const Tensor t = random_f32({4, 9}, 3);
  EXPECT_EQ(values(Weight::from_tensor(t, WeightPrecision::F16).values), values(t.to(DType::F16)));
  EXPECT_EQ(values(Weight::from_tensor(t, WeightPrecision::BF16).values),
            values(t.to(DType::BF16)));
  // A 16-bit file stays in its own format under either 16-bit precision.
  EXPECT_EQ(Weight::from_tensor(t.to(DType::BF16), WeightPrecision::F16).dtype(), DType::BF16);
}

TEST(weight, int8_quantizes_each_output_channel_symmetrically) {
  const float rows[3][5] = {{127.f, -3.5f, 2.5f, 0.4f, -127.f},  // scale 1: halves go to even
                            {0.f, 0.f, 0.f, 0.f, 0.f},           // an all-zero channel
                            {254.f, 1.f, -1.f, 3.f, 0.f}};       // scale 2
  const Tensor t = Tensor::from_floats(&rows[0][0], {3, 5});
  const Weight w = Weight::from_tensor(t, WeightPrecision::Int8);
  ASSERT_TRUE(w.quantized());
  EXPECT_EQ(w.dtype(), DType::I8);
  EXPECT_EQ(w.scales.to_vector(), (std::vector<float>{1.f, 1.f, 2.f}));
  const int8_t* q = w.values.data_as<int8_t>();
  EXPECT_EQ(std::vector<int>(q, q + 15),
            (std::vector<int>{127, -4, 2, 0, -127, 0, 0, 0, 0, 0, 127, 0, 0, 2, 0}));
  EXPECT_EQ(w.to_f32().to_vector(),
            (std::vector<float>{127, -4, 2, 0, -127, 0, 0, 0, 0, 0, 254, 0, 0, 4, 0}));
  EXPECT_EQ(w.nbytes(), 15u + 3u * sizeof(float));
}

// int8 rows go straight to bfloat16 (16 at a time on AVX-512): the bits of rounding the float32
// products, for every int8 value, odd lengths (the scalar tail) and scales that make the products
// round to even, reach subnormals or overflow.
TEST(weight, int8_rows_dequantize_to_bf16_as_the_float_products_round) {
  std::vector<int8_t> q;
  for (int v = -128; v <= 127; ++v) q.push_back(static_cast<int8_t>(v));
  q.push_back(5);  // 257 values: 16 blocks of 16 and a tail of one
  for (float scale : {1.f, 0.0123f, 3.0517578e-5f, 1e-40f, 3e36f, 1.00390625f}) {
    std::vector<uint16_t> got(q.size()), want(q.size());
    scaled_int8_to_bf16(q.data(), static_cast<int64_t>(q.size()), scale, got.data());
    for (size_t i = 0; i < q.size(); ++i) want[i] = float_to_bf16(static_cast<float>(q[i]) * scale);
    EXPECT_EQ(got, want) << scale;
  }
}

TEST(weight, quantized_matrices_reshape_only_within_an_output_channel) {
  const Weight w = Weight::from_tensor(random_f32({6, 4, 1, 1}, 4), WeightPrecision::Int8);
  EXPECT_EQ(w.reshape({6, 4}).shape(), Shape({6, 4}));
  EXPECT_THROW(w.reshape({4, 6}), ShapeError);
  EXPECT_THROW(Weight(w.values, Tensor::zeros({5})), ShapeError);
  EXPECT_THROW(Weight(random_f32({2, 2}, 5), Tensor::zeros({2})), ShapeError);
}
