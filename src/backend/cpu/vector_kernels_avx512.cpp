// The vector kernels compiled for AVX-512 (x86-64 only; CMakeLists.txt adds -mavx512f with
// 512-bit vectors preferred): twice AVX2's lanes for the softmax of large attention maps.
#if defined(__x86_64__)
#define DIFFUSE_VECTOR_ISA avx512
#define DIFFUSE_VECTOR_ISA_NAME "avx512"
#include "backend/cpu/vector_kernels_impl.inl"
#endif
