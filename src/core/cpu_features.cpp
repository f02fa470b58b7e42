#include "core/cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace diffuse {

bool cpu_has_f16c() {
#if defined(__x86_64__)
  static const bool yes = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    // F16C operates on AVX registers: usable only where AVX is (which includes OS support).
    return (ecx & bit_F16C) != 0 && __builtin_cpu_supports("avx");
  }();
  return yes;
#else
  return false;
#endif
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__)
  static const bool yes = __builtin_cpu_supports("avx512bf16");
  return yes;
#else
  return false;
#endif
}

}  // namespace diffuse
