// The Winograd tile transforms compiled for AVX2 (x86-64 only; CMakeLists.txt adds -mavx2).
#if defined(__x86_64__)
#define DIFFUSE_VECTOR_ISA avx2
#define DIFFUSE_VECTOR_ISA_NAME "avx2"
#include "backend/cpu/winograd_transforms_impl.inl"
#endif
