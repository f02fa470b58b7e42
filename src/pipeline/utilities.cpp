// The helpers of diffuse/utilities.hpp: the public face of the tokenizer and of synthetic model
// folders (process_peak_rss_bytes is core's, declared publicly there).
#include "diffuse/utilities.hpp"

#include <fcntl.h>
#include <stdio.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "backend/backend.h"
#include "backend/ops.h"
#include "core/thread_pool.h"
#include "diffuse/diffuse.hpp"
#include "io/atomic_file.h"
#include "io/canny.h"
#include "pipeline/synthetic_weights.h"
#include "tokenizer/clip_tokenizer.h"

namespace fs = std::filesystem;

namespace diffuse {

struct Tokenizer::Impl {
  ClipTokenizer clip;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& dir) {
  std::error_code ec;
  const fs::path sub = fs::path(dir) / "tokenizer";
  const std::string from = fs::is_directory(sub, ec) ? sub.string() : dir;
  return Tokenizer(std::make_unique<Impl>(Impl{ClipTokenizer::load(from)}));
}

Tokenizer::Encoded Tokenizer::encode(const std::string& text) const {
  auto e = impl_->clip.encode_padded(text);
  return {std::move(e.input_ids), e.tokens};
}

int Tokenizer::max_length() const {
  return static_cast<int>(impl_->clip.max_length());
}

void synthesize_model(const std::string& config_dir, const std::string& tokenizer_dir,
                      const std::string& out_dir, const std::string& dtype) {
  const std::pair<const char*, DType> kStorage[] = {
      {"f32", DType::F32}, {"f16", DType::F16}, {"bf16", DType::BF16}};
  const auto storage = std::find_if(std::begin(kStorage), std::end(kStorage),
                                    [&](const auto& s) { return dtype == s.first; });
  if (storage == std::end(kStorage))
    throw ConfigError("dtype: unknown '" + dtype + "' (choose f32, f16 or bf16)");
  fs::path out(out_dir);
  if (!out.has_filename()) out = out.parent_path();  // "dir/" is "dir"
  if (out.empty()) throw FileError("synthesize_model: empty output folder name");
  std::error_code ec;
  if (fs::exists(fs::symlink_status(out, ec)))
    throw FileError(out.string() + ": already exists (not overwritten)");
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path(), ec);
  const std::string tmp = create_unique_sibling(out.string(), 0777, nullptr);
  try {
    write_synthetic_model(config_dir, tokenizer_dir, tmp, storage->second);
    // RENAME_NOREPLACE: a folder created at `out` meanwhile (even an empty one) is not replaced.
    int rc = ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, out.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && errno == EINVAL) {  // a file system without RENAME_NOREPLACE
      if (fs::exists(fs::symlink_status(out, ec)))
        errno = EEXIST;
      else
        rc = std::rename(tmp.c_str(), out.c_str());
    }
    if (rc != 0) {
      const int err = errno;
      if (err == EEXIST) throw FileError(out.string() + ": already exists (not overwritten)");
      throw FileError(out.string() + ": cannot create: " + std::strerror(err));
    }
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace diffuse

namespace diffuse {

SystemInfo system_info() {
  SystemInfo info;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      info.cpu = line.substr(line.find(':') + 2);
      break;
    }
  info.hardware_threads = hardware_threads();
  const cpu::KernelChoice k = cpu::kernel_choice();
  info.cpu_features = k.cpu_features;
  info.vector_kernels = k.vector_kernels;
  info.gemm = k.gemm;
  info.conv3x3 = k.conv3x3;
  info.bf16_compute = k.bf16_compute;
  info.backends = backend_names();
  const cuda::Availability& gpus = cuda::availability();
  for (const cuda::Gpu& g : gpus.gpus)
    info.gpus.push_back({g.index, g.name, g.memory_bytes, g.compute_capability});
  info.gpu_problem = gpus.problem;
  return info;
}

double measure_sgemm_gflops(int threads, double seconds) {
  ThreadPool pool(threads);
  ThreadPoolScope scope(pool);
  constexpr int64_t kRows = 4096, kInner = 2880, kCols = 320;
  const Tensor x = Tensor::full({kRows, kInner}, 0.5f);
  const Tensor w = Tensor::full({kCols, kInner}, 0.25f);
  const double flops = 2.0 * kRows * kInner * kCols;
  double best = 0, spent = 0;
  for (int run = 0; run < 3 || (spent < seconds && run < 100); ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    ops::linear(x, w, nullptr);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spent += s;
    best = std::max(best, flops / s / 1e9);
  }
  return best;
}

Image canny_edges(const Image& image, float low_threshold, float high_threshold) {
  const Rgb8Image edges = canny_edges(Rgb8Image{image.width, image.height, image.to_rgb8()},
                                      low_threshold, high_threshold);
  return Image::from_rgb8(edges.width, edges.height, edges.pixels);
}

}  // namespace diffuse
