// The Winograd tile transforms compiled for AVX-512 (x86-64 only; CMakeLists.txt adds the flags).
#if defined(__x86_64__)
#define DIFFUSE_VECTOR_ISA avx512
#define DIFFUSE_VECTOR_ISA_NAME "avx512"
#include "backend/cpu/winograd_transforms_impl.inl"
#endif
