// CPU features the kernels choose by at run time, checked in a way both GCC and Clang 14 accept
// (Clang 14's __builtin_cpu_supports does not know "f16c").
#pragma once

namespace diffuse {

/// F16C half-precision conversions usable (the CPU has them and the OS saves AVX state).
bool cpu_has_f16c();
/// AVX512_BF16's bfloat16 dot products (vdpbf16ps): what WeightCompute::BF16 runs fast on.
bool cpu_has_avx512_bf16();

}  // namespace diffuse
