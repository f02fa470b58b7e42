// Backends: one table of op implementations per device type, registered once (as ggml-backend's
// interface or MLX's eval_cpu/eval_gpu). ops:: dispatches through backend_for(tensor.device()).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "backend/op_table.h"
#include "backend/ops.h"
#include "core/device.h"

namespace diffuse {

using ops::Conv2dParams;
using ops::Expr;

struct Backend {
  const char* name = "";
  Device device;
#define DIFFUSE_BACKEND_FIELD(ret, op, params, args, primary) ret(*op) params = nullptr;
  DIFFUSE_BACKEND_OPS(DIFFUSE_BACKEND_FIELD)
#undef DIFFUSE_BACKEND_FIELD
};

/// The Backend table of the kernels in the enclosing namespace (one function per op of
/// op_table.h, declared with DIFFUSE_DECLARE_OP): what each backend's backend() returns.
#define DIFFUSE_BACKEND_TABLE(backend_name, backend_device) \
  [] {                                                      \
    Backend b;                                              \
    b.name = backend_name;                                  \
    b.device = backend_device;                              \
    DIFFUSE_BACKEND_OPS(DIFFUSE_BACKEND_TABLE_ENTRY)        \
    return b;                                               \
  }()
#define DIFFUSE_BACKEND_TABLE_ENTRY(ret, op, params, args, primary) b.op = &op;

/// The backend that runs ops on tensors of `device` (Error when this build has none).
const Backend& backend_for(Device device);
/// Backends built into this library, by name ("cpu", "reference").
std::vector<std::string> backend_names();

struct DeviceChoice {
  Device device;
  std::string warning;  // non-empty when the choice fell back (e.g. "all" without a GPU)
};
/// Resolves a backend name or one of Core ML's compute-unit spellings: "cpu"/"cpuOnly" -> cpu,
/// "reference" -> reference, "cuda"/"cpuAndGPU" -> the GPU backend (ConfigError while none is
/// built or usable), "all" -> the GPU backend where usable, else cpu with a warning.
DeviceChoice resolve_device(const std::string& name);

namespace cpu {
const Backend& backend();
/// Which kernels the CPU backend runs on this machine, chosen at run time from its features.
struct KernelChoice {
  std::string vector_kernels;  // the element-wise kernel set: "avx512", "avx2", "baseline"
  std::string gemm;            // e.g. "oneDNN 2.6.3, avx2"
  /// 3x3 stride-1 float32 convolutions on larger maps: "oneDNN winograd" (AVX-512 CPUs) or
  /// "own winograd, <isa> transforms".
  std::string conv3x3;
  std::string bf16_compute;               // "avx512_bf16" or "float32" (WeightCompute::BF16's path)
  std::vector<std::string> cpu_features;  // those the kernels could use, as the CPU reports
};
KernelChoice kernel_choice();
}  // namespace cpu
namespace ref {
const Backend& backend();
}
namespace cuda {
struct Gpu {
  int index = 0;
  std::string name;            // "NVIDIA H200"
  int64_t memory_bytes = 0;    // total device memory
  int compute_capability = 0;  // major * 10 + minor (90 = Hopper)
};
/// The GPUs the CUDA backend can run on, or why it cannot: `problem` says what is missing (this
/// build has no CUDA backend; no NVIDIA driver; no GPU) and is empty when `gpus` is not.
struct Availability {
  std::vector<Gpu> gpus;
  std::string problem;
};
/// Probed once per process (the driver is asked on first use).
const Availability& availability();
/// The CUDA backend's ops (starting the CUDA runtime); Error when availability() has a problem.
const Backend& backend();
}  // namespace cuda

}  // namespace diffuse
