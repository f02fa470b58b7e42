// The vector kernels for the build's baseline instruction set (SSE2 on x86-64).
#define DIFFUSE_VECTOR_ISA baseline
#define DIFFUSE_VECTOR_ISA_NAME "baseline"
#include "backend/cpu/vector_kernels_impl.inl"
