// Every backend against the reference backend, from one case table (ggml's test-backend-ops is
// the model): each case builds its inputs from fixed seeds on the device under test, runs ops::
// there, and the results are compared with the same case run on the reference backend. Shapes are
// real SD shapes (conv_in, cross-attention over 77 tokens, GroupNorm over 320 channels, CLIP's
// causal attention) and odd sizes (edge tiles, padding, strides).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "backend/backend.h"
#include "backend/op_costs.h"
#include "backend/ops.h"
#include "common/fixtures.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

using namespace diffuse;
using ops::expr::in;

namespace {

Tensor random_tensor(const Shape& s, uint32_t seed, Device device, float scale = 1.f) {
  return test::random_tensor(s, seed, scale).on(device);
}

Tensor token_ids(const Shape& s, int64_t vocab, uint32_t seed, Device device) {
  std::mt19937 g(seed);
  Tensor t = Tensor::empty(s, DType::I64);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<int64_t>()[i] = int64_t(g() % vocab);
  return t.on(device);
}

/// A copy to run an in-place op on.
Tensor copy_of(const Tensor& t) {
  return ops::evaluate(in(0), {t});
}

struct OpCase {
  std::string name;
  /// Runs the op on `device` and returns its result (an in-place op returns the tensor it wrote).
  std::function<Tensor(Device)> run;
  /// Largest accepted max|a - b| / max|b|; 0 for ops that must match bit for bit.
  double tolerance;
};

// Accumulating ops differ from the reference (which accumulates in double) by float rounding.
constexpr double kAccumulating = 2e-5;
constexpr double kBf16Probabilities = 2e-4;
// Flash attention in bf16 rounds the unnormalised probabilities exp(s - running max) (as
// PyTorch's flash kernel does), the reference the normalised ones: the two roundings of one
// probability differ by up to one bf16 step, 2^-8 relative, which shows undiluted where a query
// sees only a few keys (the first causal rows).
constexpr double kBf16UnnormalisedProbabilities = 0x1p-8;

std::vector<OpCase> op_cases() {
  std::vector<OpCase> c;
  auto R = [](const Shape& s, uint32_t seed, Device d, float scale = 1.f) {
    return random_tensor(s, seed, d, scale);
  };
  // ---- linear algebra
  c.push_back({"linear/cross_attention_k",
               [=](Device d) {
                 Tensor w = R({320, 768}, 2, d), b = R({320}, 3, d);
                 return ops::linear(R({2, 77, 768}, 1, d), w, &b);
               },
               kAccumulating});
  c.push_back({"linear/odd_no_bias",
               [=](Device d) {
                 return ops::linear(R({3, 7, 33}, 4, d), R({19, 33}, 5, d), nullptr);
               },
               kAccumulating});
  // Layer matrices held as stored or requested (core/weight.h): 16-bit and int8 forms.
  const std::pair<const char*, WeightPrecision> forms[] = {{"f16", WeightPrecision::F16},
                                                           {"bf16", WeightPrecision::BF16},
                                                           {"int8", WeightPrecision::Int8}};
  for (const auto& [form, precision] : forms) {
    c.push_back({std::string("linear/weight_") + form,
                 [=, p = precision](Device d) {
                   const Weight w = Weight::from_tensor(R({45, 37}, 6, d), p);
                   Tensor b = R({45}, 7, d);
                   return ops::linear(R({2, 9, 37}, 8, d), w, &b);
                 },
                 kAccumulating});
    c.push_back({std::string("conv2d/weight_") + form,
                 [=, p = precision](Device d) {
                   const Weight w = Weight::from_tensor(R({13, 6, 3, 3}, 9, d), p);
                   Tensor b = R({13}, 10, d);
                   return ops::conv2d(R({2, 6, 7, 9}, 11, d), w, &b, ops::Conv2dParams::same(1));
                 },
                 kAccumulating});
  }
  // bfloat16 compute (--precision bf16/int8) on real SD layer shapes: the UNet's feed-forward and
  // a 1x1 projection (GEMM), a 3x3 conv on a map of the direct kernel's size with odd channels,
  // and the VAE encoder's stride-2 downsampling (im2col).
  auto bf16 = [](const Weight& w) {
    Weight b = w;
    b.compute = WeightCompute::BF16;
    return b;
  };
  c.push_back({"linear/bf16_feed_forward",
               [=](Device d) {
                 Tensor b = R({1280}, 12, d);
                 return ops::linear(
                     R({2, 64, 320}, 13, d),
                     Weight::from_tensor(R({1280, 320}, 14, d), WeightPrecision::BF16), &b);
               },
               kAccumulating});
  c.push_back({"conv2d/bf16_pointwise_proj",
               [=](Device d) {
                 Tensor b = R({320}, 15, d);
                 return ops::conv2d(
                     R({2, 320, 8, 8}, 16, d),
                     Weight::from_tensor(R({320, 320, 1, 1}, 17, d), WeightPrecision::Int8), &b,
                     {});
               },
               kAccumulating});
  c.push_back({"conv2d/bf16_direct_odd_channels_66x67",
               [=](Device d) {
                 Tensor b = R({11}, 18, d);
                 return ops::conv2d(R({2, 13, 66, 67}, 19, d), bf16(R({11, 13, 3, 3}, 20, d)), &b,
                                    ops::Conv2dParams::same(1));
               },
               kAccumulating});
  c.push_back({"conv2d/bf16_vae_downsample",
               [=](Device d) {
                 return ops::conv2d(R({1, 16, 17, 16}, 21, d), bf16(R({16, 16, 3, 3}, 22, d)),
                                    nullptr, {2, 0, 0, 1, 1});
               },
               kAccumulating});
  // ---- convolution and resampling
  struct Conv {
    const char* name;
    Shape x, w;
    ops::Conv2dParams p;
  };
  const Conv convs[] = {
      {"conv2d/unet_conv_in_64x64", {1, 4, 64, 64}, {320, 4, 3, 3}, ops::Conv2dParams::same(1)},
      {"conv2d/unet_320ch_8x8", {2, 320, 8, 8}, {320, 320, 3, 3}, ops::Conv2dParams::same(1)},
      {"conv2d/odd_9x11", {2, 5, 9, 11}, {7, 5, 3, 3}, ops::Conv2dParams::same(1)},
      {"conv2d/pointwise", {1, 4, 8, 6}, {6, 4, 1, 1}, {}},
      {"conv2d/stride2", {2, 3, 9, 8}, {4, 3, 3, 3}, ops::Conv2dParams::same(1, 2)},
      {"conv2d/vae_downsample_pad_br", {1, 3, 8, 8}, {5, 3, 3, 3}, {2, 0, 0, 1, 1}},
      // Maps of 64x64 and more take the CPU backend's direct kernels, cut into bands of rows:
      // channel counts off its 8-wide blocks, several bands with a short last one, a batch of 2,
      // stride 2 with the VAE encoder's bottom/right padding, and the VAE decoder's conv_out.
      {"conv2d/direct_odd_channels_67x70",
       {1, 13, 67, 70},
       {11, 13, 3, 3},
       ops::Conv2dParams::same(1)},
      {"conv2d/direct_bands_batch2", {2, 32, 150, 64}, {24, 32, 3, 3}, ops::Conv2dParams::same(1)},
      {"conv2d/direct_stride2_pad_br", {1, 16, 160, 130}, {16, 16, 3, 3}, {2, 0, 0, 1, 1}},
      {"conv2d/direct_vae_conv_out", {1, 128, 96, 64}, {3, 128, 3, 3}, ops::Conv2dParams::same(1)},
      {"conv2d/direct_unpadded_5x5", {1, 8, 70, 68}, {9, 8, 5, 5}, {}},
      // From 128x128, float32 3x3 stride-1 convolutions take oneDNN's Winograd kernel on AVX-512
      // CPUs: bands of 4-row tiles with a short last one, channels of a multiple of 16 and not.
      {"conv2d/winograd_bands_130x132",
       {1, 32, 130, 132},
       {32, 32, 3, 3},
       ops::Conv2dParams::same(1)},
      {"conv2d/winograd_odd_channels_batch2",
       {2, 13, 128, 129},
       {11, 13, 3, 3},
       ops::Conv2dParams::same(1)},
  };
  uint32_t seed = 10;
  for (const Conv& v : convs) {
    const uint32_t s0 = seed;
    seed += 3;
    c.push_back({v.name,
                 [=](Device d) {
                   Tensor b = R({v.w[0]}, s0 + 2, d);
                   return ops::conv2d(R(v.x, s0, d), R(v.w, s0 + 1, d), &b, v.p);
                 },
                 kAccumulating});
  }
  c.push_back({"upsample_nearest_2x",
               [=](Device d) {
                 return ops::upsample_nearest_2x(R({2, 37, 5, 9}, 40, d));
               },
               0});
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{9, 17}, {7, 3}, {11, 30}})
    c.push_back({"upsample_nearest/" + std::to_string(oh) + "x" + std::to_string(ow),
                 [=, h = oh, w = ow](Device d) {
                   return ops::upsample_nearest(R({2, 3, 5, 9}, 41, d), h, w);
                 },
                 0});
  // ---- normalisation
  c.push_back({"layer_norm/clip_77x768",
               [=](Device d) {
                 return ops::layer_norm(R({2, 77, 768}, 20, d, 3.f), R({768}, 21, d),
                                        R({768}, 22, d), 1e-5f);
               },
               kAccumulating});
  for (bool silu : {false, true}) {
    c.push_back({std::string("group_norm/unet_320ch") + (silu ? "_silu" : ""),
                 [=](Device d) {
                   return ops::group_norm(R({2, 320, 16, 16}, 23, d, 2.f), 32, R({320}, 24, d),
                                          R({320}, 25, d), 1e-5f, silu);
                 },
                 kAccumulating});
    c.push_back({std::string("group_norm/odd") + (silu ? "_silu" : ""),
                 [=](Device d) {
                   return ops::group_norm(R({2, 8, 5, 7}, 26, d, 3.f), 4, R({8}, 27, d),
                                          R({8}, 28, d), 1e-6f, silu);
                 },
                 kAccumulating});
  }
  // ---- activations and element-wise
  using InPlace = void (*)(Tensor&);
  const std::pair<const char*, InPlace> activations[] = {{"silu_", ops::silu_},
                                                         {"gelu_", ops::gelu_},
                                                         {"quick_gelu_", ops::quick_gelu_},
                                                         {"softmax_", ops::softmax_}};
  for (auto [name, fn] : activations)
    c.push_back({name,
                 [=, op = fn](Device d) {
                   Tensor x = copy_of(R({4, 1003}, 30, d, 3.f));
                   op(x);
                   return x;
                 },
                 kAccumulating});
  c.push_back({"geglu/unet_ff",
               [=](Device d) {
                 return ops::geglu(R({2, 64, 2 * 1280}, 31, d));
               },
               kAccumulating});
  c.push_back({"add_",
               [=](Device d) {
                 Tensor x = copy_of(R({2, 320, 9, 7}, 32, d));
                 ops::add_(x, R({2, 320, 9, 7}, 33, d));
                 return x;
               },
               0});
  c.push_back({"add_channel_bias_/temb",
               [=](Device d) {
                 Tensor x = copy_of(R({2, 320, 9, 7}, 34, d));
                 ops::add_channel_bias_(x, R({2, 320}, 35, d));
                 return x;
               },
               0});
  c.push_back({"add_broadcast_/clip_positions",
               [=](Device d) {
                 Tensor x = copy_of(R({2, 77, 768}, 36, d));
                 ops::add_broadcast_(x, R({77, 768}, 37, d));
                 return x;
               },
               0});
  c.push_back({"scale_",
               [=](Device d) {
                 Tensor x = copy_of(R({3, 1001}, 38, d));
                 ops::scale_(x, 1.f / 0.18215f);
                 return x;
               },
               0});
  c.push_back({"clamp_",
               [=](Device d) {
                 Tensor x = copy_of(R({3, 1001}, 39, d, 3.f));
                 ops::clamp_(x, -1.5f, 2.f);
                 return x;
               },
               0});
  c.push_back({"copy_",
               [=](Device d) {
                 Tensor x = copy_of(R({5, 7}, 42, d));
                 ops::copy_(x, R({5, 7}, 43, d));
                 return x;
               },
               0});
  c.push_back({"concat/batch",
               [=](Device d) {
                 return ops::concat(R({1, 77, 768}, 44, d), R({2, 77, 768}, 45, d), 0);
               },
               0});
  c.push_back({"concat/channels",
               [=](Device d) {
                 return ops::concat(R({2, 640, 8, 8}, 46, d), R({2, 320, 8, 8}, 47, d), 1);
               },
               0});
  // Tiled VAE decoding stitches image tiles along rows and columns.
  c.push_back({"concat/rows",
               [=](Device d) {
                 return ops::concat(R({2, 3, 96, 40}, 48, d), R({2, 3, 17, 40}, 49, d), 2);
               },
               0});
  c.push_back({"concat/columns",
               [=](Device d) {
                 return ops::concat(R({1, 3, 33, 96}, 50, d), R({1, 3, 33, 7}, 51, d), 3);
               },
               0});
  c.push_back({"repeat_batch",
               [=](Device d) {
                 return ops::repeat_batch(R({2, 5, 3}, 48, d), 5);
               },
               0});
  c.push_back({"nchw_to_nlc/odd",
               [=](Device d) {
                 return ops::nchw_to_nlc(R({2, 37, 5, 9}, 49, d));
               },
               0});
  c.push_back({"nlc_to_nchw/unet_320ch",
               [=](Device d) {
                 return ops::nlc_to_nchw(R({2, 63, 320}, 50, d), 7, 9);
               },
               0});
  c.push_back({"embedding/clip_tokens",
               [=](Device d) {
                 return ops::embedding(token_ids({2, 77}, 1000, 51, d), R({1000, 64}, 52, d));
               },
               0});
  // A 16-bit table (an fp16 text encoder's, kept as stored): rows widened exactly.
  for (const DType dtype : {DType::F16, DType::BF16})
    c.push_back(
        {std::string("embedding/table_") + std::string(dtype_name(dtype)),
         [=](Device d) {
           return ops::embedding(token_ids({2, 77}, 1000, 51, d), R({1000, 64}, 52, d).to(dtype));
         },
         0});
  c.push_back({"select_tokens/pooled",
               [=](Device d) {
                 return ops::select_tokens(R({3, 77, 64}, 53, d), token_ids({3}, 77, 54, d));
               },
               0});
  // ---- attention
  c.push_back({"attention/cross_1024x77_8heads",
               [=](Device d) {
                 return ops::attention(R({2, 1024, 320}, 55, d), R({2, 77, 320}, 56, d),
                                       R({2, 77, 320}, 57, d), 8, false, WeightCompute::F32);
               },
               kAccumulating});
  c.push_back({"attention/self_300_two_blocks",
               [=](Device d) {
                 return ops::attention(R({2, 300, 32}, 58, d), R({2, 300, 32}, 59, d),
                                       R({2, 300, 32}, 60, d), 4, false, WeightCompute::F32);
               },
               kAccumulating});
  c.push_back({"attention/clip_causal_77x768",
               [=](Device d) {
                 return ops::attention(R({1, 77, 768}, 61, d), R({1, 77, 768}, 62, d),
                                       R({1, 77, 768}, 63, d), 12, true, WeightCompute::F32);
               },
               kAccumulating});
  // In bf16 a probability may round to the neighbouring bf16 value (2^-8 relative) where the
  // float32 softmax and the reference's double one straddle a rounding boundary.
  for (const bool causal : {false, true})
    c.push_back({std::string("attention/bf16_self_300_") + (causal ? "causal" : "two_blocks"),
                 [=](Device d) {
                   return ops::attention(R({2, 300, 64}, 64, d), R({2, 300, 64}, 65, d),
                                         R({2, 300, 64}, 66, d), 2, causal, WeightCompute::BF16);
                 },
                 kBf16Probabilities});
  // Standard and Flash against the same reference: Flash's blocks of 128 queries and 512 keys
  // with odd remainders (1100 tokens: 9 query blocks, 3 key blocks), causal across key blocks,
  // cross-attention shorter than a block, and its bf16 form.
  for (const AttentionKernel kernel : {AttentionKernel::Standard, AttentionKernel::Flash}) {
    const std::string name = std::string(attention_kernel_name(kernel));
    for (const bool causal : {false, true})
      c.push_back({"attention/" + name + "_self_1100_" + (causal ? "causal" : "full"),
                   [=](Device d) {
                     return ops::attention(R({1, 1100, 64}, 67, d), R({1, 1100, 64}, 68, d),
                                           R({1, 1100, 64}, 69, d), 2, causal, WeightCompute::F32,
                                           kernel);
                   },
                   kAccumulating});
    c.push_back({"attention/" + name + "_cross_300x77_8heads",
                 [=](Device d) {
                   return ops::attention(R({2, 300, 320}, 70, d), R({2, 77, 320}, 71, d),
                                         R({2, 77, 320}, 72, d), 8, false, WeightCompute::F32,
                                         kernel);
                 },
                 kAccumulating});
    c.push_back(
        {"attention/" + name + "_bf16_self_700_causal",
         [=](Device d) {
           return ops::attention(R({1, 700, 64}, 73, d), R({1, 700, 64}, 74, d),
                                 R({1, 700, 64}, 75, d), 2, true, WeightCompute::BF16, kernel);
         },
         kernel == AttentionKernel::Flash ? kBf16UnnormalisedProbabilities : kBf16Probabilities});
  }
  // ---- fused formulas and reductions: exact on every backend
  c.push_back({"evaluate/dpmsolver_sde_update",
               [=](Device d) {
                 const float c1 = 0.93f, c2 = -0.21f, c3 = 0.017f;
                 return ops::evaluate(c1 * in(0) - c2 * in(1) + c3 * in(2),
                                      {R({2, 4, 64, 64}, 64, d), R({2, 4, 64, 64}, 65, d),
                                       R({2, 4, 64, 64}, 66, d)});
               },
               0});
  c.push_back(
      {"evaluate/every_instruction_odd_size",
       [=](Device d) {
         const auto x = in(0), y = in(1);
         return ops::evaluate(
             clamp(fma(x, y, exp(-abs(x))) / sqrt(abs(y) + 1.f) - min(x, y) * max(x, y), -2.f, 3.f),
             {R({1, 3, 17, 19}, 67, d, 2.f), R({1, 3, 17, 19}, 68, d, 2.f)});
       },
       0});
  c.push_back({"dynamic_threshold_",
               [=](Device d) {
                 Tensor x = copy_of(R({2, 4, 16, 15}, 69, d, 3.f));
                 ops::dynamic_threshold_(x, 0.995f, 2.5f);
                 return x;
               },
               0});
  return c;
}

}  // namespace

class BackendOps : public ::testing::TestWithParam<std::string> {};

TEST_P(BackendOps, every_op_matches_the_reference_backend) {
  const Device device = resolve_device(GetParam()).device;
  for (const OpCase& c : op_cases()) {
    SCOPED_TRACE(c.name);
    const Tensor got = c.run(device), want = c.run(kReference);
    EXPECT_EQ(got.device(), device) << "results carry the device of their inputs";
    EXPECT_EQ(want.device(), kReference);
    const double err = test::rel_error(got, want);
    if (c.tolerance == 0) {
      EXPECT_EQ(test::abs_error(got, want), 0.0);
    } else {
      EXPECT_LT(err, c.tolerance);
    }
  }
}

// A 16-bit matrix computing in float32 computes exactly what its float32 widening computes: the
// compact form saves memory without changing a single result (an fp16 download, --precision f16).
TEST_P(BackendOps, compact_weights_in_float32_compute_as_their_widening) {
  const Device device = resolve_device(GetParam()).device;
  const Tensor x = random_tensor({2, 33, 320}, 80, device);
  const Tensor img = random_tensor({1, 24, 11, 13}, 81, device);
  for (DType dtype : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    const Weight lw = random_tensor({77, 320}, 82, device).to(dtype);
    ASSERT_EQ(lw.compute, WeightCompute::F32);
    EXPECT_EQ(test::abs_error(ops::linear(x, lw, nullptr), ops::linear(x, lw.to_f32(), nullptr)),
              0.0);
    const Weight cw = random_tensor({40, 24, 3, 3}, 83, device).to(dtype);
    const auto same = ops::Conv2dParams::same(1);
    EXPECT_EQ(test::abs_error(ops::conv2d(img, cw, nullptr, same),
                              ops::conv2d(img, cw.to_f32(), nullptr, same)),
              0.0);
  }
}

// --precision bf16 and int8 compute in bfloat16: what they multiply is bf16(x) and bf16(w), the
// sums float32, so they agree with float32 arithmetic on the rounded operands (up to the order of
// the sums) and not with the unrounded activations.
TEST_P(BackendOps, bf16_compute_multiplies_the_bf16_roundings_of_both_operands) {
  const Device device = resolve_device(GetParam()).device;
  const Tensor x = random_tensor({2, 33, 320}, 84, device);
  const Tensor img = random_tensor({1, 24, 70, 66}, 85, device);
  auto rounded = [](const Tensor& t) { return t.to(DType::BF16).to(DType::F32); };
  for (WeightPrecision p : {WeightPrecision::BF16, WeightPrecision::Int8}) {
    SCOPED_TRACE(std::string(weight_precision_name(p)));
    const Weight lw = Weight::from_tensor(random_tensor({77, 320}, 86, device), p);
    ASSERT_EQ(lw.compute, WeightCompute::BF16);
    const Tensor lin = ops::linear(x, lw, nullptr);
    EXPECT_LT(test::rel_error(lin, ops::linear(rounded(x), rounded(lw.to_f32()), nullptr)),
              kAccumulating);
    EXPECT_GT(test::rel_error(lin, ops::linear(x, rounded(lw.to_f32()), nullptr)), 1e-4);
    const Weight cw = Weight::from_tensor(random_tensor({40, 24, 3, 3}, 87, device), p);
    const auto same = ops::Conv2dParams::same(1);
    const Tensor conv = ops::conv2d(img, cw, nullptr, same);
    EXPECT_LT(test::rel_error(conv, ops::conv2d(rounded(img), rounded(cw.to_f32()), nullptr, same)),
              kAccumulating);
    EXPECT_GT(test::rel_error(conv, ops::conv2d(img, rounded(cw.to_f32()), nullptr, same)), 1e-4);
  }
}

// Kernels split work over the thread pool by fixed tiles, never by the thread count, so a result
// is the same bit for bit at any --threads (here: the direct convolution's bands and the GEMM).
TEST_P(BackendOps, results_do_not_depend_on_the_thread_count) {
  const Device device = resolve_device(GetParam()).device;
  const Tensor x = random_tensor({2, 24, 130, 66}, 90, device);
  const Tensor w = random_tensor({16, 24, 3, 3}, 91, device), b = random_tensor({16}, 92, device);
  const Tensor small = random_tensor({2, 24, 9, 7}, 93, device);
  const Tensor large = random_tensor({1, 24, 136, 130}, 94, device);  // Winograd's size
  auto run = [&](int threads) {
    ThreadPool pool(threads);
    ThreadPoolScope scope(pool);
    return std::tuple{ops::conv2d(x, w, &b, ops::Conv2dParams::same(1)),
                      ops::conv2d(small, w, &b, ops::Conv2dParams::same(1)),
                      ops::conv2d(large, w, &b, ops::Conv2dParams::same(1))};
  };
  const auto [one_big, one_small, one_large] = run(1);
  const auto [three_big, three_small, three_large] = run(3);
  EXPECT_EQ(test::abs_error(one_big, three_big), 0.0);
  EXPECT_EQ(test::abs_error(one_small, three_small), 0.0);
  EXPECT_EQ(test::abs_error(one_large, three_large), 0.0);
}

// The op seam counts the arithmetic of the ops that carry it into the caller's FlopCounter.
TEST_P(BackendOps, flops_are_counted_at_the_op_seam) {
  const Device device = resolve_device(GetParam()).device;
  ops::FlopCounter counter;
  {
    ops::FlopCounterScope scope(counter);
    ops::linear(random_tensor({2, 7, 33}, 1, device), random_tensor({19, 33}, 2, device), nullptr);
    EXPECT_EQ(counter.flops, 2.0 * 14 * 33 * 19);
    counter.flops = 0;
    // 3x3, stride 2, padding 1: 9x8 -> 5x4 outputs.
    ops::conv2d(random_tensor({2, 3, 9, 8}, 3, device), random_tensor({4, 3, 3, 3}, 4, device),
                nullptr, ops::Conv2dParams::same(1, 2));
    EXPECT_EQ(counter.flops, 2.0 * 2 * 4 * (5 * 4) * (3 * 9));
    counter.flops = 0;
    const Tensor q = random_tensor({2, 10, 16}, 5, device),
                 kv = random_tensor({2, 77, 16}, 6, device);
    ops::attention(q, kv, kv, 2, false, WeightCompute::F32);
    EXPECT_EQ(counter.flops, 4.0 * 2 * 10 * 77 * 16);
    counter.flops = 0;
    Tensor x = random_tensor({4, 4}, 7, device);
    ops::silu_(x);
    EXPECT_EQ(counter.flops, 0.0);
  }
  ops::linear(random_tensor({2, 33}, 8, device), random_tensor({19, 33}, 9, device), nullptr);
  EXPECT_EQ(counter.flops, 0.0) << "counted after its scope ended";
}

TEST_P(BackendOps, count_nonfinite_counts_nan_and_inf) {
  const Device device = resolve_device(GetParam()).device;
  Tensor x = random_tensor({3, 101}, 70, kCpu);
  x.f32()[5] = NAN;
  x.f32()[200] = INFINITY;
  x.f32()[302] = -INFINITY;
  EXPECT_EQ(ops::count_nonfinite(x.on(device)), 3);
}

TEST_P(BackendOps, shape_errors_are_reported) {
  const Device device = resolve_device(GetParam()).device;
  Tensor x = random_tensor({2, 3, 4, 4}, 60, device), w = random_tensor({5, 4, 3, 3}, 61, device);
  EXPECT_THROW(ops::conv2d(x, w, nullptr, {}), ShapeError);
  EXPECT_THROW(ops::linear(x, w, nullptr), ShapeError);
  Tensor ids = Tensor::zeros({1, 2}, DType::I64);
  ids.data_as<int64_t>()[1] = 99;
  EXPECT_THROW(ops::embedding(ids.on(device), random_tensor({10, 4}, 62, device)), ShapeError);
  EXPECT_THROW(ops::evaluate(in(0) + in(1), {x}), ShapeError);
  EXPECT_THROW(ops::concat(x, w, 1), ShapeError);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendOps, ::testing::ValuesIn(backend_names()));

TEST(backend_registry, every_backend_implements_every_op) {
  for (const std::string& name : backend_names()) {
    const Backend& b = backend_for(resolve_device(name).device);
    EXPECT_EQ(std::string(b.name), name);
#define DIFFUSE_CHECK_OP(ret, op, params, args, primary) \
  EXPECT_NE(b.op, nullptr) << name << " lacks " #op;
    DIFFUSE_BACKEND_OPS(DIFFUSE_CHECK_OP)
#undef DIFFUSE_CHECK_OP
  }
}

TEST(backend_registry, names_and_compute_units_resolve) {
  EXPECT_EQ(resolve_device("cpu").device, kCpu);
  EXPECT_EQ(resolve_device("cpuOnly").device, kCpu);
  EXPECT_EQ(resolve_device("reference").device, kReference);
  const DeviceChoice all = resolve_device("all");
  const cuda::Availability& gpus = cuda::availability();
  if (gpus.problem.empty()) {  // a machine with a usable GPU
    EXPECT_EQ(all.device, (Device{DeviceType::Cuda, 0}));
    EXPECT_EQ(resolve_device("cuda").device, (Device{DeviceType::Cuda, 0}));
    EXPECT_EQ(resolve_device("cpuAndGPU").device, (Device{DeviceType::Cuda, 0}));
    const std::string past_last = "cuda:" + std::to_string(gpus.gpus.size());
    test::expect_error_mentioning<ConfigError>([&] { resolve_device(past_last); }, {"no GPU"});
  } else {
    std::printf("no GPU here: %s\n", gpus.problem.c_str());
    EXPECT_TRUE(gpus.gpus.empty());
    EXPECT_NE(gpus.problem.find("CUDA"), std::string::npos) << gpus.problem;
    EXPECT_EQ(all.device, kCpu);
    EXPECT_NE(all.warning.find(gpus.problem), std::string::npos) << "the fallback says why";
    // --backend cuda names what is missing (no CUDA build, no driver, no GPU) and the way out.
    test::expect_error_mentioning<ConfigError>([] { resolve_device("cuda"); },
                                               {"cuda", gpus.problem, "--backend cpu"});
    test::expect_error_mentioning<ConfigError>([] { resolve_device("cpuAndGPU"); }, {"cpuAndGPU"});
    test::expect_error_mentioning<ConfigError>([] { resolve_device("cuda:1"); }, {"cuda:1"});
    const std::vector<std::string> names = backend_names();
    EXPECT_EQ(std::count(names.begin(), names.end(), "cuda"), 0);
  }
  test::expect_error_mentioning<ConfigError>([] { resolve_device("cuda:x"); }, {"cuda:x"});
  test::expect_error_mentioning<ConfigError>([] { resolve_device("tpu"); },
                                             {"unknown backend 'tpu'", "cpu", "reference"});
}

TEST(backend_registry, host_memory_is_explicit_for_other_devices) {
  Tensor t = random_tensor({2, 3}, 71, kReference);
  EXPECT_NO_THROW(t.f32());  // reference is a host device
  EXPECT_EQ(t.to_vector().size(), 6u);
  if (!cuda::availability().problem.empty()) {  // no allocator without a started CUDA backend
    EXPECT_THROW(Tensor::empty({2}, DType::F32, Device{DeviceType::Cuda, 0}), Error);
  }
}

// Tensors on the GPU: copies to and from the host keep every byte; shown where a GPU is.
TEST(backend_registry, gpu_tensors_copy_to_and_from_the_host) {
  if (!cuda::availability().problem.empty())
    GTEST_SKIP() << "no GPU: " << cuda::availability().problem;
  const Device gpu{DeviceType::Cuda, 0};
  backend_for(gpu);  // starts the backend (its memory)
  const Tensor host = random_tensor({3, 5, 7}, 81, kCpu);
  const Tensor device = host.on(gpu);
  EXPECT_EQ(device.device(), gpu);
  EXPECT_THROW(device.f32(), Error);  // device memory is read through a copy
  EXPECT_EQ(device.to_vector(), host.to_vector());
  const Tensor ids = Tensor::zeros({4}, DType::I64).on(gpu);
  EXPECT_EQ(ids.to_host().data_as<int64_t>()[3], 0);
  // Narrowed views (the VAE's mean/logvar halves, tile edges) made contiguous on the device.
  for (int dim : {0, 1, 2})
    EXPECT_EQ(device.narrow(dim, 1, 2).contiguous().to_vector(),
              host.narrow(dim, 1, 2).contiguous().to_vector())
        << dim;
}
