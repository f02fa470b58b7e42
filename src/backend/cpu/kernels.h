// The CPU backend's kernels: one per op of op_table.h (documented in ops.h), plus the GEMM they
// share. Registered as the `cpu` backend in backend.cpp.
#pragma once

#include <functional>

#include "backend/backend.h"

namespace diffuse::cpu {

DIFFUSE_BACKEND_OPS(DIFFUSE_DECLARE_OP)

/// Runs piece(m0, m1, n0, n1) over the output of an m x n x k GEMM: whole when small, else the
/// larger output dimension cut into pieces (multiples of `grain`) shared out over the thread pool,
/// so that each piece stays a large, cache-friendly single-threaded GEMM (gemm and gemm_bf16).
/// The cut follows the shape alone, so results are the same bits at any thread count.
void split_gemm_output(int64_t m, int64_t n, int64_t k, int64_t grain,
                       const std::function<void(int64_t, int64_t, int64_t, int64_t)>& piece);

/// C[M,N] = alpha * op(A) op(B) + beta * C on raw row-major buffers (BLAS semantics, oneDNN
/// sgemm), parallelised over the current thread pool.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

/// Limits the calling thread's OpenMP team (which Debian's oneDNN runs its primitives on) to
/// that thread: our pool splits the work, so every thread calling into oneDNN calls this first.
void keep_onednn_on_this_thread();

/// Each of `rows` rows of `cols` values of `out` set to bias[row] (`per_row`: a conv's channels)
/// or to bias[0, cols) (a linear layer's outputs), over the pool: the GEMM then accumulates.
void fill_with_bias(float* out, int64_t rows, int64_t cols, const float* bias, bool per_row);

/// C[m,n] = alpha A[m,k] B[k,n] (+ C when `accumulate`) with A and B bfloat16 (row strides lda,
/// ldb; B stored transposed, [n,k], when `trans_b`) and C float32: the products of bf16 values
/// summed in float32 (oneDNN's matmul on AVX512_BF16, else both widened and sgemm), over the thread
/// pool.
void gemm_bf16(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b,
               int64_t ldb, bool trans_b, bool accumulate, float* c, int64_t ldc,
               float alpha = 1.f);
/// gemm_bf16's path on CPUs without AVX512_BF16: both operands widened to float32, then gemm.
void gemm_bf16_widened(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda,
                       const uint16_t* b, int64_t ldb, bool trans_b, bool accumulate, float* c,
                       int64_t ldc, float alpha = 1.f);
/// Whether the CPU multiplies bf16 natively (AVX512_BF16); without it gemm_bf16 is correct, slower.
bool has_bf16_dot_product();
/// A BF16 tensor of x's shape holding bf16(x), nearest even (core/dtype.h's floats_to_bf16),
/// converted over the thread pool: the activations a bf16 GEMM multiplies.
Tensor rounded_to_bf16(const Tensor& x);

/// linear and conv2d for weights with WeightCompute::BF16 (bf16_layers.cpp).
Tensor linear_bf16(const Tensor& x, const Weight& w, const Tensor* bias);
Tensor conv2d_bf16(const Tensor& x, const Weight& w, const Tensor* bias,
                   const ops::Conv2dParams& p);

/// A contiguous tensor for a transient copy of a layer matrix: the current memory pool's scratch
/// block, grown to the largest matrix and reused (as pool blocks, every matrix size would stay
/// cached: for int8 at bf16, a second copy of the model), released with the pool's cache.
Tensor weight_scratch(const Shape& shape, DType dtype, Device device);

/// A layer weight as a contiguous F32 tensor: itself when already F32, else a transient widened
/// (F16/BF16) or dequantized (I8) copy.
Tensor widened(const Weight& w);

}  // namespace diffuse::cpu
