// The CPU backend's kernels: one per op of op_table.h (documented in ops.h), plus the GEMM they
// share. Registered as the `cpu` backend in backend.cpp.
#pragma once

#include "backend/backend.h"

namespace diffuse::cpu {

DIFFUSE_BACKEND_OPS(DIFFUSE_DECLARE_OP)

/// C[M,N] = alpha * op(A) op(B) + beta * C on raw row-major buffers (BLAS semantics, oneDNN
/// sgemm), parallelised over the current thread pool.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

/// Limits the calling thread's OpenMP team (which Debian's oneDNN runs its primitives on) to
/// that thread: our pool splits the work, so every thread calling into oneDNN calls this first.
void keep_onednn_on_this_thread();

/// A layer weight as a contiguous F32 tensor: itself when already F32, else a transient widened
/// (F16/BF16) or dequantized (I8) copy.
Tensor widened(const Weight& w);

}  // namespace diffuse::cpu
