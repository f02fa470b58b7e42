// diffuse: helpers around the pipeline that tools need without loading a model: the CLIP tokenizer
// of a model folder, model folders with synthetic weights, the process's peak memory, and file
// checksums.
// Included by diffuse.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/error.hpp"

namespace diffuse {

/// The CLIP tokenizer of a model, loaded from its tokenizer files alone (no weights are read).
/// Gives the same ids as Pipeline::tokenize. Immutable once loaded, so thread-safe.
class Tokenizer {
 public:
  /// `dir` is a diffusers model folder (its tokenizer/ subfolder is used) or a tokenizer folder
  /// itself (vocab.json, merges.txt, optional tokenizer_config.json / special_tokens_map.json).
  /// Throws FileError naming the missing or malformed file.
  static Tokenizer load(const std::string& dir);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  struct Encoded {
    std::vector<int64_t> input_ids;  // bos + ids + eos, truncated and padded to max_length()
    size_t tokens = 0;               // untruncated count (bos and eos included)
  };
  /// As transformers' tokenizer(text, padding="max_length", truncation=True).
  Encoded encode(const std::string& text) const;
  /// The text encoder's context length (77 for SD 1.x/2.x).
  int max_length() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Writes a complete diffusers model folder at `out_dir` for the architecture described in
/// `config_dir` (model_index.json, text_encoder/, unet/, vae/ config.json files,
/// scheduler/scheduler_config.json), with every weight synthesized by the rule of
/// LoadOptions::synthetic_weights and the tokenizer files from `tokenizer_dir` (vocab.json,
/// merges.txt; tokenizer configs are taken from `config_dir` when it has them). The images such a
/// model makes are noise: it exists for benchmarks and demos without downloads.
///
/// The folder is built under a hidden temporary name next to `out_dir` (".<name>.XXXXXX") and
/// renamed to `out_dir` only when complete: a failed call leaves nothing behind, and a killed
/// process at most that hidden folder, never a partial `out_dir`. Throws FileError when `out_dir`
/// already exists (nothing is overwritten).
/// `dtype` is how the weight files store the values: "f32" (default), "f16" (as the fp16
/// downloads most people have) or "bf16"; anything else is a ConfigError.
void synthesize_model(const std::string& config_dir, const std::string& tokenizer_dir,
                      const std::string& out_dir, const std::string& dtype = "f32");

/// Peak resident set size of this process so far, in bytes (getrusage's ru_maxrss), for reports.
size_t process_peak_rss_bytes();

/// What this machine offers the library and what the library chose for it (`diffuse info
/// --system`): the CPU and the kernels picked at run time from its features.
struct SystemInfo {
  std::string cpu;                        // model name ("" where the OS does not tell)
  int hardware_threads = 0;               // what --threads 0 uses
  std::vector<std::string> cpu_features;  // those the kernels could use (avx2, fma, f16c, ...)
  std::string vector_kernels;  // the element-wise kernel set: "avx512", "avx2", "baseline"
  std::string gemm;            // GEMM/convolution library and its kernels
  /// 3x3 convolutions on larger maps: "oneDNN winograd" or "own winograd, avx2 transforms".
  std::string conv3x3;
  /// How --precision bf16/int8 multiply: "avx512_bf16" (oneDNN's bf16 kernels) or "float32" (the
  /// same bf16 products through sgemm: no AVX512_BF16 on this CPU).
  std::string bf16_compute;
  std::vector<std::string> backends;  // usable here: "cpu", "reference" (and "cuda")
  struct Gpu {
    int index = 0;
    std::string name;
    int64_t memory_bytes = 0;
    int compute_capability = 0;  // 90 = 9.0 (Hopper)
  };
  std::vector<Gpu> gpus;    // those the CUDA backend can use
  std::string gpu_problem;  // why there are none (no CUDA backend in this build, no driver, ...)
};
SystemInfo system_info();

/// This machine's float32 matrix-multiply rate in GFLOP/s, as the CPU backend's kernels reach it
/// (a [4096 x 2880] x [2880 x 320] product: the im2col GEMM of a 3x3 convolution at the SD UNet's
/// first level, 512x512 image): the best of repeated runs on `threads` threads (0: all cores)
/// over about `seconds`. The yardstick `diffuse bench` divides model throughput by.
double measure_sgemm_gflops(int threads = 0, double seconds = 1.0);

/// SHA-256 of a file's bytes as lowercase hex (package checksums, Hub downloads, the server's
/// model hashes). FileError naming `path` when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace diffuse
