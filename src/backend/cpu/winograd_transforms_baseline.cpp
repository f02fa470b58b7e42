// The Winograd tile transforms for the architecture's baseline (any x86-64 or aarch64 CPU).
#define DIFFUSE_VECTOR_ISA baseline
#define DIFFUSE_VECTOR_ISA_NAME "baseline"
#include "backend/cpu/winograd_transforms_impl.inl"
