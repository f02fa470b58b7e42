// Options shared by the commands that load models: where the math runs, with how many threads,
// how the weights are held, and which weight files (variant, VAE) are read.
#include <iostream>

#include "commands.h"

namespace diffuse::cli {

void add_backend_options(CLI::App& cmd, LoadOptions& load) {
  auto* b = cmd.add_option("--backend", load.backend,
                           "where the math runs: cpu (optimised kernels), reference (plain loops, "
                           "slow; for checking), or a Core ML compute-unit name (see "
                           "--compute-units)")
                ->capture_default_str();
  auto* cu = cmd.add_option("--compute-units", load.backend,
                            "Core ML's spelling of --backend: cpuOnly (= cpu), cpuAndGPU or cuda "
                            "(the GPU backend), all (the GPU backend where usable, else cpu); "
                            "plain backend names work too");
  b->excludes(cu);
  cmd.add_option("--device", load.device,
                 "GPU number for --backend cuda (as cuda:N; `diffuse info --system` lists them)");
  cmd.add_option("--threads", load.threads, "CPU threads for this pipeline (default: all cores)");
  cmd.add_flag("--low-memory", load.low_memory,
               "least memory over speed: weights read from the model's files are paged in for "
               "each layer and released after it (--precision f32, as stored), and the VAE "
               "decodes in 256-pixel tiles");
  cmd.add_option("--precision", load.precision,
                 "how layer weights are held and computed: f32 (as stored, exact; an fp16 model "
                 "stays 16-bit in memory), f16 (half the memory, float32 compute), bf16 (half the "
                 "memory, bfloat16 compute: fastest on CPUs with AVX512_BF16), int8 (a quarter; "
                 "per-channel scales, bfloat16 compute)")
      ->capture_default_str();
  cmd.add_option("--attention", load.attention,
                 "attention kernel: sliced (256 query rows at a time), standard (a whole head's "
                 "scores at once), flash (online softmax over key blocks: least memory); the "
                 "same images to float32 rounding (default: the package's, else sliced)");
  cmd.add_option("--variant", load.variant,
                 "diffusers weight-file variant to load, e.g. fp16 "
                 "(diffusion_pytorch_model.fp16.safetensors; components without it load their "
                 "plain files)");
  cmd.add_option("--vae", load.vae,
                 "replace the model's VAE: a VAE folder, a model folder, or a .safetensors/.ckpt "
                 "file (diffusers or original layout, e.g. vae-ft-mse-840000-ema-pruned)");
}

std::string backend_flag(const CLI::App& cmd) {
  return cmd.count("--compute-units") ? "--compute-units" : "--backend";
}

std::unique_ptr<Pipeline> load_pipeline(const std::string& model, const LoadOptions& options,
                                        const std::string& flag) {
  try {
    return Pipeline::load(model, options);
  } catch (const ConfigError& e) {
    // The library names the backend it rejects; name the flag the user typed as well.
    const std::string msg = e.what();
    if (msg.find("backend") != std::string::npos && msg.find(flag) == std::string::npos)
      throw ConfigError(flag + " " + options.backend + ": " + msg);
    throw;
  }
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
}

}  // namespace diffuse::cli
