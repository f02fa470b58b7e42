// Every CPU op against its plain reference twin, on shapes that exercise edge cases (odd sizes,
// padding, stride 2, blocks larger than one attention tile).
#include <gtest/gtest.h>

#include <random>

#include "backend/ops.h"
#include "backend/reference/reference_ops.h"
#include "common/fixtures.h"
#include "diffuse/error.hpp"

using namespace diffuse;

namespace {
Tensor random_tensor(const Shape& s, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(g);
  return t;
}
constexpr double kTol = 1e-5;
}  // namespace

TEST(backend_ops, linear_matches_reference) {
  Tensor x = random_tensor({3, 7, 33}, 1), w = random_tensor({19, 33}, 2),
         b = random_tensor({19}, 3);
  EXPECT_LT(test::rel_error(ops::linear(x, w, &b), ref::linear(x, w, &b)), kTol);
  Tensor big = random_tensor({300, 64}, 4), wb = random_tensor({96, 64}, 5);
  EXPECT_LT(test::rel_error(ops::linear(big, wb, nullptr), ref::linear(big, wb, nullptr)), kTol);
}

TEST(backend_ops, conv2d_matches_reference) {
  struct Case {
    Shape x, w;
    ops::Conv2dParams p;
  };
  const Case cases[] = {
      {{2, 5, 9, 11}, {7, 5, 3, 3}, ops::Conv2dParams::same(1)},
      {{1, 4, 8, 6}, {6, 4, 1, 1}, {}},
      {{2, 3, 9, 8}, {4, 3, 3, 3}, ops::Conv2dParams::same(1, 2)},
      {{1, 3, 8, 8}, {5, 3, 3, 3}, {2, 0, 0, 1, 1}},  // VAE downsample: pad right/bottom only
  };
  uint32_t seed = 10;
  for (const auto& c : cases) {
    Tensor x = random_tensor(c.x, seed++), w = random_tensor(c.w, seed++),
           b = random_tensor({c.w[0]}, seed++);
    EXPECT_LT(test::rel_error(ops::conv2d(x, w, &b, c.p), ref::conv2d(x, w, &b, c.p)), kTol)
        << c.x.str();
    EXPECT_LT(test::rel_error(ops::conv2d(x, w, nullptr, c.p), ref::conv2d(x, w, nullptr, c.p)),
              kTol);
  }
}

TEST(backend_ops, norms_match_reference) {
  Tensor x = random_tensor({2, 8, 5, 7}, 20, 3.f), g = random_tensor({8}, 21),
         b = random_tensor({8}, 22);
  for (bool silu : {false, true})
    EXPECT_LT(test::rel_error(ops::group_norm(x, 4, g, b, 1e-5f, silu),
                              ref::group_norm(x, 4, g, b, 1e-5f, silu)),
              kTol);
  Tensor y = random_tensor({3, 5, 24}, 23, 2.f), lg = random_tensor({24}, 24),
         lb = random_tensor({24}, 25);
  EXPECT_LT(test::rel_error(ops::layer_norm(y, lg, lb, 1e-5f), ref::layer_norm(y, lg, lb, 1e-5f)),
            kTol);
}

TEST(backend_ops, activations_match_reference) {
  Tensor x = random_tensor({4, 1000}, 30, 3.f);
  Tensor a = x.clone(), b = x.clone(), c = x.clone(), s = x.clone();
  ops::silu_(a);
  ops::gelu_(b);
  ops::quick_gelu_(c);
  ops::softmax_(s);
  EXPECT_LT(test::rel_error(a, ref::silu(x)), kTol);
  EXPECT_LT(test::rel_error(b, ref::gelu(x)), kTol);
  EXPECT_LT(test::rel_error(c, ref::quick_gelu(x)), kTol);
  EXPECT_LT(test::rel_error(s, ref::softmax(x)), kTol);
  EXPECT_LT(test::rel_error(ops::geglu(x), ref::geglu(x)), kTol);
  Tensor cl = x.clone();
  ops::clamp_(cl, -1.5f, 2.f);
  EXPECT_EQ(test::abs_error(cl, ref::clamp(x, -1.5f, 2.f)), 0.0);
}

TEST(backend_ops, layout_and_resampling_match_reference) {
  Tensor x = random_tensor({2, 37, 5, 9}, 40);
  EXPECT_EQ(test::abs_error(ops::nchw_to_nlc(x), ref::nchw_to_nlc(x)), 0.0);
  EXPECT_EQ(test::abs_error(ops::nlc_to_nchw(ops::nchw_to_nlc(x), 5, 9), x), 0.0);
  EXPECT_EQ(test::abs_error(ops::upsample_nearest_2x(x), ref::upsample_nearest_2x(x)), 0.0);
  // Resizes to a given size (the UNet's odd-sized skips), exact 2x, and shrinking.
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{9, 17}, {10, 18}, {7, 3}, {5, 9}, {11, 30}}) {
    EXPECT_EQ(test::abs_error(ops::upsample_nearest(x, oh, ow), ref::upsample_nearest(x, oh, ow)),
              0.0)
        << oh << "x" << ow;
  }
  // By torch's rule (scale 3/5 = 0.6), 3 -> 5 picks rows 0,0,1,1,2.
  Tensor r = Tensor::empty({1, 1, 3, 1});
  for (int i = 0; i < 3; ++i) r.f32()[i] = float(i);
  Tensor u = ops::upsample_nearest(r, 5, 1);
  const float want[] = {0, 0, 1, 1, 2};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(u.f32()[i], want[i]);
}

TEST(backend_ops, attention_matches_reference) {
  // 300 queries span two 256-row blocks; cross-attention with 77 keys; causal self-attention.
  Tensor q = random_tensor({2, 300, 32}, 50), k = random_tensor({2, 300, 32}, 51),
         v = random_tensor({2, 300, 32}, 52);
  EXPECT_LT(test::rel_error(ops::attention(q, k, v, 4, false), ref::attention(q, k, v, 4, false)),
            kTol);
  Tensor kc = random_tensor({2, 77, 32}, 53), vc = random_tensor({2, 77, 32}, 54);
  EXPECT_LT(
      test::rel_error(ops::attention(q, kc, vc, 2, false), ref::attention(q, kc, vc, 2, false)),
      kTol);
  Tensor qs = random_tensor({1, 77, 32}, 55);
  EXPECT_LT(test::rel_error(ops::attention(qs, kc.narrow(0, 0, 1).contiguous(),
                                           vc.narrow(0, 0, 1).contiguous(), 4, true),
                            ref::attention(qs, kc.narrow(0, 0, 1).contiguous(),
                                           vc.narrow(0, 0, 1).contiguous(), 4, true)),
            kTol);
}

TEST(backend_ops, shape_errors_are_reported) {
  Tensor x = random_tensor({2, 3, 4, 4}, 60), w = random_tensor({5, 4, 3, 3}, 61);
  EXPECT_THROW(ops::conv2d(x, w, nullptr, {}), ShapeError);
  Tensor ids = Tensor::zeros({1, 2}, DType::I64);
  ids.data_as<int64_t>()[1] = 99;
  EXPECT_THROW(ops::embedding(ids, random_tensor({10, 4}, 62)), ShapeError);
}
