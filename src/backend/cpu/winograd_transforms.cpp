#include "backend/cpu/winograd_transforms.h"

#include <cstring>

#include "backend/cpu/vector_kernels.h"

namespace diffuse::cpu {

namespace baseline {
extern const WinogradTransforms winograd;
}
#if defined(__x86_64__)
namespace avx2 {
extern const WinogradTransforms winograd;
}
namespace avx512 {
extern const WinogradTransforms winograd;
}
#endif

std::vector<const WinogradTransforms*> runnable_winograd_transforms() {
  // The same instruction sets as the vector kernels, which detect what this CPU runs.
  std::vector<const WinogradTransforms*> sets;
  for (const VectorKernels* k : runnable_vector_kernels()) {
    if (std::strcmp(k->isa, "baseline") == 0) sets.push_back(&baseline::winograd);
#if defined(__x86_64__)
    if (std::strcmp(k->isa, "avx2") == 0) sets.push_back(&avx2::winograd);
    if (std::strcmp(k->isa, "avx512") == 0) sets.push_back(&avx512::winograd);
#endif
  }
  return sets;
}

const WinogradTransforms& winograd_transforms() {
  static const WinogradTransforms* const best = runnable_winograd_transforms().back();
  return *best;
}

}  // namespace diffuse::cpu
