#include <oneapi/dnnl/dnnl.h>

#include "backend/cpu/conv2d_direct.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/vector_kernels.h"
#include "backend/cpu/winograd_transforms.h"
#include "core/cpu_features.h"

namespace diffuse::cpu {

const Backend& backend() {
  static const Backend table = DIFFUSE_BACKEND_TABLE("cpu", kCpu);
  return table;
}

namespace {

const char* onednn_isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41:
      return "sse4.1";
    case dnnl_cpu_isa_avx:
      return "avx";
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2 + vnni";
    case dnnl_cpu_isa_avx512_core:
      return "avx512";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512 + vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512 + bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512 + amx";
    default:
      return "generic";
  }
}

}  // namespace

KernelChoice kernel_choice() {
  KernelChoice c;
  c.vector_kernels = vector_kernels().isa;
  c.conv3x3 = onednn_has_winograd()
                  ? "oneDNN winograd"
                  : std::string("own winograd, ") + winograd_transforms().isa + " transforms";
  c.bf16_compute = has_bf16_dot_product() ? "avx512_bf16" : "float32";
  const dnnl_version_t* v = dnnl_version();
  c.gemm = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch) + ", " + onednn_isa_name(dnnl_get_effective_cpu_isa());
#if defined(__x86_64__)
  // The features that decide the kernels: vector width, FMA, 16-bit conversions, and the
  // bf16/int8 dot products (AVX-512 BF16 / VNNI) the low-precision compute paths would use.
  const std::pair<const char*, bool> features[] = {
      {"sse4.2", __builtin_cpu_supports("sse4.2")},
      {"avx", __builtin_cpu_supports("avx")},
      {"avx2", __builtin_cpu_supports("avx2")},
      {"fma", __builtin_cpu_supports("fma")},
      {"f16c", cpu_has_f16c()},
      {"avx512f", __builtin_cpu_supports("avx512f")},
      {"avx512vnni", __builtin_cpu_supports("avx512vnni")},
      {"avx512bf16", __builtin_cpu_supports("avx512bf16")},
  };
  for (const auto& [name, present] : features)
    if (present) c.cpu_features.emplace_back(name);
#endif
  return c;
}

}  // namespace diffuse::cpu
