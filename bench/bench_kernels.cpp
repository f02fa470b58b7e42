// The CPU backend's kernels on the shapes SD 1.5 gives them at 512x512: the 3x3 convolution of
// each UNet level (batch 2, classifier-free guidance) and each VAE decoder level, self-attention
// at 4096 and 1024 tokens, GroupNorm+SiLU; the convolutions in each weight precision. Counters
// report GFLOP per second ("GFLOP=.../s"; FLOPs as the op seam counts them,
// backend/op_costs.h). Linked into diffuse_bench (main is in bench_sd15.cpp); filter with e.g.
// --benchmark_filter=Conv3x3.
#include <benchmark/benchmark.h>

#include <iterator>
#include <random>
#include <string>

#include "backend/op_costs.h"
#include "backend/ops.h"
#include "core/weight.h"

using namespace diffuse;

namespace {

Tensor random_tensor(const Shape& s, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(g);
  return t;
}

void report_rate(benchmark::State& state, double flops) {
  state.counters["GFLOP"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

struct ConvCase {
  int64_t batch, channels, size;
  int64_t out_channels = channels;  // the UNet's up blocks take in concatenated skips
};
// Args: case index, precision (WeightPrecision as int).
constexpr ConvCase kConvCases[] = {
    {2, 320, 64},         // UNet level 0 at 512x512
    {2, 640, 32},         // UNet level 1
    {2, 1280, 16},        // UNet level 2
    {2, 1280, 8},         // UNet level 3
    {2, 1280, 4},         // UNet level 3 at 256x256
    {1, 512, 32},         // VAE decoder at 256x256: mid block / up block 0
    {1, 512, 64},         // VAE decoder: mid block / up block 0
    {1, 512, 128},        // up block 1
    {1, 256, 256},        // up block 2
    {1, 128, 512},        // up block 3
    {2, 1920, 32, 640},   // UNet level 1 up block: resnet 0 after the skip concat
    {2, 1280, 32, 1280},  // UNet level 2 upsampler's conv (at level 1's size)
};

void BM_Conv3x3(benchmark::State& state) {
  const ConvCase c = kConvCases[state.range(0)];
  const auto precision = static_cast<WeightPrecision>(state.range(1));
  const Tensor x = random_tensor({c.batch, c.channels, c.size, c.size}, 1);
  Tensor w32 = random_tensor({c.out_channels, c.channels, 3, 3}, 2);
  ops::scale_(w32, 1.f / 40.f);
  const Weight w = Weight::from_tensor(w32, precision);
  const Tensor b = random_tensor({c.out_channels}, 3);
  const auto same = ops::Conv2dParams::same(1);
  for (auto _ : state) benchmark::DoNotOptimize(ops::conv2d(x, w, &b, same).f32());
  report_rate(state, ops::op_flops(ops::op_tags::conv2d{}, x, w, &b, same));
  state.SetLabel(std::string(weight_precision_name(precision)));
}

/// Args {case, precision} for each of `cases` cases in every WeightPrecision.
void case_and_precision_args(benchmark::internal::Benchmark* b, int64_t cases) {
  for (int64_t i = 0; i < cases; ++i)
    for (WeightPrecision p :
         {WeightPrecision::F32, WeightPrecision::F16, WeightPrecision::BF16, WeightPrecision::Int8})
      b->Args({i, static_cast<int64_t>(p)});
}

void conv_args(benchmark::internal::Benchmark* b) {
  case_and_precision_args(b, int64_t(std::size(kConvCases)));
}

struct LinearCase {
  int64_t tokens, in, out;
};
// The transformer blocks' feed-forward layers (GEGLU projection in, projection out) at UNet
// levels 0 and 2 for 512x512, batch 2.
constexpr LinearCase kLinearCases[] = {
    {2 * 4096, 320, 2560},
    {2 * 4096, 1280, 320},
    {2 * 256, 1280, 10240},
    {2 * 256, 5120, 1280},
};

void BM_Linear(benchmark::State& state) {
  const LinearCase c = kLinearCases[state.range(0)];
  const auto precision = static_cast<WeightPrecision>(state.range(1));
  const Tensor x = random_tensor({c.tokens, c.in}, 10);
  Tensor w32 = random_tensor({c.out, c.in}, 11);
  ops::scale_(w32, 1.f / 40.f);
  const Weight w = Weight::from_tensor(w32, precision);
  const Tensor b = random_tensor({c.out}, 12);
  for (auto _ : state) benchmark::DoNotOptimize(ops::linear(x, w, &b).f32());
  report_rate(state, ops::op_flops(ops::op_tags::linear{}, x, w, &b));
  state.SetLabel(std::string(weight_precision_name(precision)));
}

void linear_args(benchmark::internal::Benchmark* b) {
  case_and_precision_args(b, int64_t(std::size(kLinearCases)));
}

// Self-attention of the UNet's transformer blocks: [2, tokens, channels], 8 heads, in each
// precision and attention kernel (core/attention_kernel.h).
void BM_Attention(benchmark::State& state) {
  const int64_t tokens = state.range(0), channels = state.range(1);
  const auto compute = static_cast<WeightCompute>(state.range(2));
  const auto kernel = static_cast<AttentionKernel>(state.range(3));
  const Tensor q = random_tensor({2, tokens, channels}, 4);
  const Tensor k = random_tensor({2, tokens, channels}, 5);
  const Tensor v = random_tensor({2, tokens, channels}, 6);
  for (auto _ : state)
    benchmark::DoNotOptimize(ops::attention(q, k, v, 8, false, compute, kernel).f32());
  report_rate(state, ops::op_flops(ops::op_tags::attention{}, q, k, v, 8, false, compute, kernel));
  state.SetLabel(std::string(compute == WeightCompute::BF16 ? "bf16 " : "f32 ") +
                 std::string(attention_kernel_name(kernel)));
}

// Softmax over rows of 4096 scores: the attention's share at 512x512 beside its two GEMMs.
void BM_Softmax(benchmark::State& state) {
  const Tensor x = random_tensor({state.range(0), state.range(1)}, 13);
  Tensor y = Tensor::empty(x.shape());
  for (auto _ : state) {
    ops::copy_(y, x);
    ops::softmax_(y);
    benchmark::DoNotOptimize(y.f32());
  }
  state.SetItemsProcessed(state.iterations() * x.numel());
}

// GroupNorm(32) + SiLU as every resnet block starts: UNet level 0, the VAE's last level.
void BM_GroupNormSilu(benchmark::State& state) {
  const Tensor x =
      random_tensor({state.range(0), state.range(1), state.range(2), state.range(2)}, 7);
  const Tensor gamma = random_tensor({state.range(1)}, 8),
               beta = random_tensor({state.range(1)}, 9);
  for (auto _ : state)
    benchmark::DoNotOptimize(ops::group_norm(x, 32, gamma, beta, 1e-6f, true).f32());
  state.SetBytesProcessed(state.iterations() * x.nbytes() * 2);
}

}  // namespace

BENCHMARK(BM_Conv3x3)->Apply(conv_args)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Linear)->Apply(linear_args)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Attention)
    ->ArgsProduct({{4096}, {320}, {0, 1}, {0, 1, 2}})
    ->ArgsProduct({{1024}, {640}, {0, 1}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Softmax)->Args({256, 4096})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GroupNormSilu)
    ->Args({2, 320, 64})
    ->Args({1, 128, 512})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
