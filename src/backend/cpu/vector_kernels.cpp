#include "backend/cpu/vector_kernels.h"

namespace diffuse::cpu {

namespace baseline {
extern const VectorKernels kernels;
}
#if defined(__x86_64__)
namespace avx2 {
extern const VectorKernels kernels;
}
namespace avx512 {
extern const VectorKernels kernels;
}
#endif

std::vector<const VectorKernels*> runnable_vector_kernels() {
  std::vector<const VectorKernels*> sets{&baseline::kernels};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) sets.push_back(&avx2::kernels);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    sets.push_back(&avx512::kernels);
#endif
  return sets;
}

const VectorKernels& vector_kernels() {
  // The CPU's features do not change while the process runs: decided once.
  static const VectorKernels* const best = runnable_vector_kernels().back();
  return *best;
}

}  // namespace diffuse::cpu
