// Small, fast pieces whose speed the unit tests used to bound with wall-clock limits (which flake
// on loaded machines and under sanitizers): the random generators' latent-sized draws and the
// tokenizer's load and worst-case word. Linked into diffuse_bench (main is in bench_sd15.cpp).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "random/philox_generator.h"
#include "random/torch_generator.h"
#include "tokenizer/clip_tokenizer.h"

using namespace diffuse;

namespace {

const std::string kTinyTokenizerDir =
    std::string(DIFFUSE_FIXTURES_DIR) + "/models/tiny-sd1/tokenizer";

// randn for one 1x4x128x128 latent (a 1024x1024 SD image); the unit tests used to expect < 10 ms.
template <typename Generator>
void BM_RandnLatent(benchmark::State& state) {
  Generator g(0);
  std::vector<float> out(4 * 128 * 128);
  for (auto _ : state) {
    g.randn(out.data(), static_cast<int64_t>(out.size()));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}

// ClipTokenizer::load of the real CLIP vocabulary and merges; the unit tests used to expect < 1 s
// (target: well under 100 ms).
void BM_TokenizerLoad(benchmark::State& state) {
  for (auto _ : state) {
    ClipTokenizer tok = ClipTokenizer::load(kTinyTokenizerDir);
    benchmark::DoNotOptimize(&tok);
  }
}

// BPE on one 20000-character word (quadratic merging would show here); the unit tests used to
// expect < 2 s.
void BM_TokenizeLongWord(benchmark::State& state) {
  const ClipTokenizer tok = ClipTokenizer::load(kTinyTokenizerDir);
  const std::string word(20000, 'a');
  for (auto _ : state) {
    auto ids = tok.encode(word);
    benchmark::DoNotOptimize(ids.data());
  }
}

BENCHMARK_TEMPLATE(BM_RandnLatent, TorchGenerator)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_RandnLatent, PhiloxGenerator)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TokenizerLoad)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TokenizeLongWord)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
