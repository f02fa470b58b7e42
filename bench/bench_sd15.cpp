// Full-size SD 1.5 component benchmarks with rule weights (../shared/fixtures/README.md,
// "golden-full"), so they need no downloaded model. Speed does not depend on weight values, so
// these numbers are the real model's.
//
// Counters: peak_act = the most activation memory (the tensor pool, weights excluded) live at once
// during the timed runs; peak_rss = the process's peak resident set so far (cumulative across the
// benchmarks of one run, so run one benchmark per process to read it for that benchmark alone).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/ops.h"
#include "core/allocator.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "models/clip/clip_text_model.h"
#include "models/unet/unet_2d_condition.h"
#include "models/vae/autoencoder_kl.h"
#include "pipeline/synthetic_weights.h"
#include "random/torch_generator.h"
#include "tokenizer/clip_tokenizer.h"

namespace fs = std::filesystem;
using namespace diffuse;

namespace {

const std::string kConfigs = std::string(DIFFUSE_CONFIGS_DIR) + "/sd15/";
// The tiny fixture model carries the real CLIP vocabulary and merges that SD 1.5 uses.
const std::string kTokenizerDir = std::string(DIFFUSE_FIXTURES_DIR) + "/models/tiny-sd1/tokenizer";
const char* kPrompt = "a photo of an astronaut riding a horse on mars";

// The synthetic text encoder as a diffusers component folder, written once and reused by later
// runs, so the load benchmark measures mmap + header parsing of a real 490 MB file.
std::string text_encoder_dir() {
  static const std::string dir = [] {
    const fs::path d = fs::path(DIFFUSE_BENCH_CACHE) / "sd15-rule-text-encoder";
    const fs::path weights = d / "model.safetensors";
    if (!fs::exists(weights)) {
      fs::create_directories(d);
      const WeightStore store = synthetic_weight_store("text_model.");
      ClipTextModel::from_weights(ClipTextConfig::load(kConfigs + "text_encoder/config.json"),
                                  store);
      std::vector<std::pair<std::string, Tensor>> tensors;
      for (const auto& k : store.keys()) tensors.emplace_back(k, store.raw(k));
      write_safetensors(weights.string(), tensors, {{"format", "pt"}});
    }
    fs::copy_file(kConfigs + "text_encoder/config.json", d / "config.json",
                  fs::copy_options::overwrite_existing);
    return d.string();
  }();
  return dir;
}

// Models are built once per process, outside any timed region (making 860M rule weights takes
// a while and is not what is measured).
const UNet2DConditionModel& unet() {
  static const UNet2DConditionModel m = UNet2DConditionModel::from_weights(
      UNetConfig::load(kConfigs + "unet/config.json"), synthetic_weight_store());
  return m;
}
const AutoencoderKL& vae() {
  static const AutoencoderKL m = AutoencoderKL::from_weights(
      VaeConfig::load(kConfigs + "vae/config.json"), synthetic_weight_store());
  return m;
}

Tensor randn(const Shape& shape, uint64_t seed) {
  TorchGenerator g(seed);
  return g.randn(shape);
}

// Brackets the timed loop: activation peak relative to what was live before (the weights).
class MemoryCounters {
 public:
  MemoryCounters() {
    release_cached_memory();
    reset_peak_memory();
    live_before_ = memory_stats().live_bytes;
  }
  void report(benchmark::State& state) const {
    const double peak = static_cast<double>(memory_stats().peak_bytes - live_before_);
    state.counters["peak_act"] =
        benchmark::Counter(peak, benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
    state.counters["peak_rss"] =
        benchmark::Counter(static_cast<double>(process_peak_rss_bytes()),
                           benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
  }

 private:
  size_t live_before_ = 0;
};

void BM_TextEncoderLoad(benchmark::State& state) {
  const std::string dir = text_encoder_dir();
  for (auto _ : state) {
    ClipTextModel m = ClipTextModel::load(dir);
    benchmark::DoNotOptimize(&m);
  }
}

// Load, then the first prompt: includes faulting the mapped weights in (from the page cache).
void BM_TextEncoderLoadAndFirstEncode(benchmark::State& state) {
  const std::string dir = text_encoder_dir();
  const ClipTokenizer tok = ClipTokenizer::load(kTokenizerDir);
  for (auto _ : state) {
    ClipTextModel m = ClipTextModel::load(dir);
    const auto ids = tok.encode_padded(kPrompt).input_ids;
    Tensor t = Tensor::empty({1, static_cast<int64_t>(ids.size())}, DType::I64);
    std::copy(ids.begin(), ids.end(), t.data_as<int64_t>());
    Tensor out = m.encode(t);
    benchmark::DoNotOptimize(out.raw());
  }
}

void BM_EncodePrompt(benchmark::State& state) {
  const ClipTextModel m = ClipTextModel::load(text_encoder_dir());
  const ClipTokenizer tok = ClipTokenizer::load(kTokenizerDir);
  MemoryCounters mem;
  for (auto _ : state) {
    const auto ids = tok.encode_padded(kPrompt).input_ids;
    Tensor t = Tensor::empty({1, static_cast<int64_t>(ids.size())}, DType::I64);
    std::copy(ids.begin(), ids.end(), t.data_as<int64_t>());
    Tensor out = m.encode(t);
    benchmark::DoNotOptimize(out.raw());
  }
  mem.report(state);
}

// One denoising evaluation as a CFG pipeline runs it: batch 2 ([uncond, cond]).
void BM_UNetStep(benchmark::State& state) {
  const int64_t latent = state.range(0);
  const UNet2DConditionModel& m = unet();
  const Tensor sample = randn({2, 4, latent, latent}, 1);
  const Tensor context = randn({2, 77, 768}, 2);
  const std::vector<double> timesteps{981, 981};
  MemoryCounters mem;
  for (auto _ : state) {
    Tensor out = m.forward(sample, timesteps, context);
    benchmark::DoNotOptimize(out.raw());
  }
  mem.report(state);
  state.SetLabel(std::to_string(latent * 8) + "x" + std::to_string(latent * 8) + " image, batch 2");
}

void BM_VaeDecode(benchmark::State& state) {
  const int64_t latent = state.range(0);
  const AutoencoderKL& m = vae();
  const Tensor latents = randn({1, 4, latent, latent}, 3);
  MemoryCounters mem;
  for (auto _ : state) {
    Tensor out = m.decode(latents);
    benchmark::DoNotOptimize(out.raw());
  }
  mem.report(state);
  state.SetLabel(std::to_string(latent * 8) + "x" + std::to_string(latent * 8) + " image");
}

// The kernel everything above reduces to (im2col convolutions, linear layers, attention): one
// GEMM of the shape of a 3x3 convolution at the UNet's first level (320 -> 320 channels, 64x64),
// so the model timings can be read against the machine's GEMM rate.
void BM_Sgemm(benchmark::State& state) {
  const int64_t m = 320, n = 64 * 64, k = 320 * 9;
  const Tensor a = randn({m, k}, 4), b = randn({k, n}, 5);
  Tensor c = Tensor::empty({m, n});
  for (auto _ : state) {
    cpu::gemm(false, false, m, n, k, 1.f, a.f32(), k, b.f32(), n, 0.f, c.f32(), n);
    benchmark::DoNotOptimize(c.raw());
  }
  state.counters["FLOPS"] = benchmark::Counter(2.0 * double(m) * double(n) * double(k),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_Sgemm)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TextEncoderLoad)->Unit(benchmark::kMillisecond)->Iterations(10)->UseRealTime();
BENCHMARK(BM_TextEncoderLoadAndFirstEncode)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();
BENCHMARK(BM_EncodePrompt)->Unit(benchmark::kMillisecond)->Iterations(10)->UseRealTime();
BENCHMARK(BM_VaeDecode)->Arg(32)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_VaeDecode)->Arg(64)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_UNetStep)->Arg(32)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_UNetStep)->Arg(64)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("diffuse_threads", std::to_string(num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
