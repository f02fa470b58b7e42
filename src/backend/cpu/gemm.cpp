// GEMM through OpenBLAS, split over the shared thread pool. OpenBLAS runs single-threaded so that
// exactly one pool owns the cores; nested calls (from inside a parallel region) run inline.
#include <cblas.h>

#include <mutex>

#include "backend/ops.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::ops {

namespace {
void ensure_single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}
}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  ensure_single_threaded_blas();
  if (m == 0 || n == 0) return;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  auto call = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const float* ap = trans_a ? a + m0 : a + m0 * lda;
    const float* bp = trans_b ? b + n0 * ldb : b + n0;
    cblas_sgemm(CblasRowMajor, ta, tb, static_cast<blasint>(m1 - m0), static_cast<blasint>(n1 - n0),
                static_cast<blasint>(k), alpha, ap, static_cast<blasint>(lda), bp,
                static_cast<blasint>(ldb), beta, c + m0 * ldc + n0, static_cast<blasint>(ldc));
  };
  // Split the larger output dimension; each piece stays a large, cache-friendly GEMM.
  const double flops = 2.0 * double(m) * double(n) * double(k);
  if (flops < 2e6) {
    call(0, m, 0, n);
  } else if (m >= n) {
    parallel_for(
        m, [&](int64_t b0, int64_t b1) { call(b0, b1, 0, n); }, 16);
  } else {
    parallel_for(
        n, [&](int64_t b0, int64_t b1) { call(0, m, b0, b1); }, 16);
  }
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias) {
  require_f32_contiguous(x, "linear input");
  require_f32_contiguous(w, "linear weight");
  if (w.ndim() != 2 || x.dim(-1) != w.dim(1))
    throw ShapeError("linear: input " + x.shape().str() + " does not match weight " +
                     w.shape().str());
  const int64_t k = w.dim(1), n = w.dim(0), m = x.numel() / k;
  Shape out_shape = x.shape();
  out_shape[-1] = n;
  Tensor out = Tensor::empty(out_shape);
  float* o = out.f32();
  float beta = 0.f;
  if (bias) {
    require_shape(*bias, {n}, "linear bias");
    const float* bp = bias->f32();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) o[i * n + j] = bp[j];
    beta = 1.f;
  }
  gemm(false, true, m, n, k, 1.f, x.f32(), k, w.f32(), k, beta, o, n);
  return out;
}

}  // namespace diffuse::ops
