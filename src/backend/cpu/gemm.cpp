// GEMM through oneDNN's sgemm, split over the shared thread pool.
//
// Why oneDNN rather than OpenBLAS: oneDNN picks its JIT kernels from the CPU's feature bits, so it
// uses AVX-512 wherever the CPU has it; Debian's OpenBLAS 0.3.21 selects kernels by CPU model and
// falls back to AVX2 on CPUs newer than itself. Measured on this project's 2-core Zen 5 machine,
// one thread, 320x2880 * 2880x4096: OpenBLAS 115 GFLOP/s, oneDNN 212 GFLOP/s (docs/PERFORMANCE.md).
//
// oneDNN's Debian build threads with OpenMP. Exactly one pool must own the cores, so every thread
// that calls into oneDNN first limits its own OpenMP team to one thread; our pool does the
// splitting. Nested calls (from inside a parallel region) run inline.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cstdlib>
#include <new>

#include "backend/cpu/kernels.h"
#include "backend/op_checks.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::cpu {

void keep_onednn_on_this_thread() {
  thread_local bool limited = false;
  if (!limited) {
    omp_set_num_threads(1);  // per calling thread (an OpenMP ICV of this thread)
    limited = true;
  }
}

namespace {

void single_threaded_sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                           float* c, int64_t ldc) {
  keep_onednn_on_this_thread();
  const dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (st != dnnl_success)
    throw ShapeError("gemm: oneDNN rejected " + std::to_string(m) + "x" + std::to_string(n) + "x" +
                     std::to_string(k) + " (status " + std::to_string(static_cast<int>(st)) + ")");
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  auto call = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const float* ap = trans_a ? a + m0 : a + m0 * lda;
    const float* bp = trans_b ? b + n0 * ldb : b + n0;
    single_threaded_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m1 - m0, n1 - n0, k, alpha, ap,
                          lda, bp, ldb, beta, c + m0 * ldc + n0, ldc);
  };
  split_gemm_output(m, n, k, 16, call);
}

namespace {

// The extent of each output piece along the split dimension. It follows the shape alone, never
// the thread count: oneDNN's sgemm picks its kernels and blockings by the size of the call, so a
// piece size that followed --threads would change the rounding of some sums, and the image with
// it. The piece count is a power of two (2, 4, 8 or 16 threads share it out evenly), at most 16,
// and pieces keep >= 256 rows or columns: each piece repacks the operand all pieces share, which
// costs little only beside that much work per packed value.
int64_t piece_extent(int64_t extent, int64_t grain, double flops) {
  constexpr double kWholeBelowFlops = 2e6;
  constexpr int64_t kMaxPieces = 16, kMinPieceExtent = 256;
  int64_t pieces = 1;
  if (flops >= kWholeBelowFlops)
    while (pieces * 2 <= kMaxPieces && extent / (pieces * 2) >= std::max(kMinPieceExtent, grain))
      pieces *= 2;
  const int64_t per_piece = (extent + pieces - 1) / pieces;
  return (per_piece + grain - 1) / grain * grain;
}

}  // namespace

void split_gemm_output(int64_t m, int64_t n, int64_t k, int64_t grain,
                       const std::function<void(int64_t, int64_t, int64_t, int64_t)>& piece) {
  const double flops = 2.0 * double(m) * double(n) * double(k);
  const bool split_rows = m >= n;
  const int64_t extent = split_rows ? m : n;
  const int64_t step = piece_extent(extent, grain, flops);
  const int64_t pieces = (extent + step - 1) / step;
  if (pieces == 1) {
    piece(0, m, 0, n);
    return;
  }
  parallel_for(pieces, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b0 = p * step, b1 = std::min(extent, b0 + step);
      if (split_rows) {
        piece(b0, b1, 0, n);
      } else {
        piece(0, m, b0, b1);
      }
    }
  });
}

void fill_with_bias(float* out, int64_t rows, int64_t cols, const float* bias, bool per_row) {
  parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          float* row = out + r * cols;
          if (per_row) {
            std::fill(row, row + cols, bias[r]);
          } else {
            std::copy(bias, bias + cols, row);
          }
        }
      },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)));
}

Tensor weight_scratch(const Shape& shape, DType dtype, Device device) {
  // The pipeline's pool holds it, so it leaves with the stage that used it (end of the denoising
  // loop: the UNet's largest widened matrix, 118 MB in float32, is not kept through the decode).
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  const Buffer scratch = current_memory_pool().scratch(bytes);
  return Tensor::view_of(scratch, scratch.get(), shape, dtype).on(device);
}

Tensor widened(const Weight& w) {
  if (w.dtype() == DType::F32 && !w.quantized()) {
    require_f32_contiguous(w.values, "weight");
    return w.values;
  }
  // A transient F32 copy for this call, widened in parallel; the model keeps the compact form.
  // (Widening inside the GEMM's packing would save the copy's memory traffic; oneDNN's sgemm
  // takes only F32.)
  Tensor out = weight_scratch(w.shape(), DType::F32, w.device());
  float* dst = out.f32();
  const int64_t cols = w.row_size();
  parallel_for(
      w.dim(0), [&](int64_t r0, int64_t r1) { w.widen_rows(r0, r1, dst + r0 * cols); },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)));
  return out;
}

Tensor linear(const Tensor& x, const Weight& weight, const Tensor* bias) {
  if (weight.compute == WeightCompute::BF16) return linear_bf16(x, weight, bias);
  require_f32_contiguous(x, "linear input");
  const Tensor w = widened(weight);
  op_checks::linear(x, w, bias);
  const int64_t k = w.dim(1), n = w.dim(0), m = x.numel() / k;
  Shape out_shape = x.shape();
  out_shape[-1] = n;
  Tensor out = Tensor::empty(out_shape);
  float* o = out.f32();
  float beta = 0.f;
  if (bias) {
    require_shape(*bias, {n}, "linear bias");
    fill_with_bias(o, m, n, bias->f32(), false);
    beta = 1.f;
  }
  gemm(false, true, m, n, k, 1.f, x.f32(), k, w.f32(), k, beta, o, n);
  return out;
}

}  // namespace diffuse::cpu
