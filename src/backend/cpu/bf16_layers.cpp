// Linear and Conv2d layers whose weight computes in bfloat16 (WeightCompute::BF16: --precision
// bf16 and int8): the activations are rounded to bf16 once per call, the weight is used as stored
// when it is bf16 (no copy) or rounded into a transient bf16 copy (int8: q * scale), and the
// products are summed in float32 by gemm_bf16 or oneDNN's bf16 direct convolution. The layouts
// and the work split are those of the float32 paths (gemm.cpp, conv2d.cpp).
//
// On a CPU without AVX512_BF16 the same bf16-rounded operands are held in float32 and handed to
// the float32 layers: the products are the same, their sums are float32 sums in another order
// (and, on large maps, through the Winograd transform).
#include <algorithm>
#include <vector>

#include "backend/cpu/conv2d_direct.h"
#include "backend/cpu/conv_as_gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/op_checks.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::cpu {

namespace {

constexpr int64_t kColumnBudgetValues = 8 << 20;  // 16 MB of bf16 im2col per tile

/// `w`'s values as a contiguous BF16 tensor of its shape: the stored tensor when it is BF16, else a
/// transient copy of bf16(w.to_f32()) made row by row.
Tensor bf16_values(const Weight& w) {
  if (w.dtype() == DType::BF16 && w.values.is_contiguous()) return w.values;
  Tensor out = weight_scratch(w.shape(), DType::BF16, w.device());
  auto* dst = out.data_as<uint16_t>();
  const int64_t cols = w.row_size();
  parallel_for(
      w.dim(0), [&](int64_t r0, int64_t r1) { w.rows_to_bf16(r0, r1, dst + r0 * cols); },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)));
  return out;
}

/// On a CPU without AVX512_BF16: the values a bf16 layer multiplies held in float32, for the
/// float32 kernels (sgemm, direct and Winograd convolutions), which are faster there than widening
/// both bf16 operands for every GEMM. `w`'s rows are rounded into a transient float32 copy.
Weight bf16_values_in_f32(const Weight& w) {
  Tensor out = weight_scratch(w.shape(), DType::F32, w.device());
  float* dst = out.f32();
  const int64_t cols = w.row_size();
  parallel_for(
      w.dim(0),
      [&](int64_t r0, int64_t r1) {
        w.widen_rows(r0, r1, dst + r0 * cols);
        round_to_bf16_in_place(dst + r0 * cols, (r1 - r0) * cols);
      },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)));
  return Weight(out);
}

Tensor rounded_in_f32(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape());
  const float* src = x.f32();
  float* dst = out.f32();
  parallel_for(
      x.numel(),
      [&](int64_t i0, int64_t i1) {
        std::copy(src + i0, src + i1, dst + i0);
        round_to_bf16_in_place(dst + i0, i1 - i0);
      },
      1 << 15);
  return out;
}

}  // namespace

Tensor linear_bf16(const Tensor& x, const Weight& weight, const Tensor* bias) {
  require_f32_contiguous(x, "linear input");
  op_checks::linear(x, weight.values, bias);
  if (!has_bf16_dot_product())
    return cpu::linear(rounded_in_f32(x), bf16_values_in_f32(weight), bias);
  const Tensor w = bf16_values(weight);
  const Tensor xb = rounded_to_bf16(x);
  const int64_t k = w.dim(1), n = w.dim(0), m = x.numel() / k;
  Shape out_shape = x.shape();
  out_shape[-1] = n;
  Tensor out = Tensor::empty(out_shape);
  if (bias) fill_with_bias(out.f32(), m, n, bias->f32(), false);
  gemm_bf16(m, n, k, xb.data_as<uint16_t>(), k, w.data_as<uint16_t>(), k, true, bias != nullptr,
            out.f32(), n);
  return out;
}

Tensor conv2d_bf16(const Tensor& x, const Weight& weight, const Tensor* bias,
                   const ops::Conv2dParams& p) {
  require_f32_contiguous(x, "conv2d input");
  int64_t OH = 0, OW = 0;
  op_checks::conv2d(x, weight.values, bias, p, &OH, &OW);
  if (!has_bf16_dot_product())
    return cpu::conv2d(rounded_in_f32(x), bf16_values_in_f32(weight), bias, p);
  const Tensor w = bf16_values(weight);
  const ConvGemmShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0),
                        w.dim(2), w.dim(3), OH,       OW};
  Tensor out = Tensor::empty({s.B, s.O, OH, OW});
  if (!conv_is_pointwise(s, p) && direct_conv2d_pays(OH, OW, s.KH, s.KW) &&
      direct_conv2d(x, w, bias, p, out))
    return out;
  const Tensor xb = rounded_to_bf16(x);
  conv2d_as_gemm(s, xb.data_as<uint16_t>(), w.data_as<uint16_t>(), bias ? bias->f32() : nullptr, p,
                 kColumnBudgetValues, out.f32(),
                 [](int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda,
                    const uint16_t* b, int64_t ldb, bool accumulate, float* c, int64_t ldc) {
                   gemm_bf16(m, n, k, a, lda, b, ldb, false, accumulate, c, ldc);
                 });
  return out;
}

}  // namespace diffuse::cpu
