// Linear and Conv2d layers whose weight computes in bfloat16 (WeightCompute::BF16: --precision
// bf16 and int8): the activations are rounded to bf16 once per call, the weight is used as stored
// when it is bf16 (no copy) or rounded into a transient bf16 copy (int8: q * scale), and the
// products are summed in float32 by gemm_bf16 or oneDNN's bf16 direct convolution. The layouts
// and the work split are those of the float32 paths (gemm.cpp, conv2d.cpp).
#include <algorithm>
#include <vector>

#include "backend/cpu/conv2d_direct.h"
#include "backend/cpu/im2col.h"
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

}  // namespace

Tensor linear_bf16(const Tensor& x, const Weight& weight, const Tensor* bias) {
  require_f32_contiguous(x, "linear input");
  op_checks::linear(x, weight.values, bias);
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
  const Tensor w = bf16_values(weight);
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t O = w.dim(0), KH = w.dim(2), KW = w.dim(3);
  Tensor out = Tensor::empty({B, O, OH, OW});
  const bool pointwise = KH == 1 && KW == 1 && p.stride == 1 && p.pad_top == 0 && p.pad_left == 0 &&
                         p.pad_bottom == 0 && p.pad_right == 0;
  if (!pointwise && direct_conv2d_pays(OH, OW, KH, KW) && has_bf16_dot_product() &&
      direct_conv2d(x, w, bias, p, out))
    return out;
  const int64_t K = C * KH * KW, OHW = OH * OW;
  const Tensor xb = rounded_to_bf16(x);
  const auto* wp = w.data_as<uint16_t>();
  const int64_t rows_per_tile =
      std::clamp<int64_t>(kColumnBudgetValues / std::max<int64_t>(K * OW, 1), 1, OH);
  Tensor col = pointwise ? Tensor() : Tensor::empty({K, rows_per_tile * OW}, DType::BF16);
  for (int64_t b = 0; b < B; ++b) {
    const uint16_t* xp = xb.data_as<uint16_t>() + b * C * H * W;
    float* ob = out.f32() + b * O * OHW;
    if (bias) fill_with_bias(ob, O, OHW, bias->f32(), true);
    if (pointwise) {
      gemm_bf16(O, OHW, C, wp, C, xp, OHW, false, bias != nullptr, ob, OHW);
      continue;
    }
    for (int64_t r0 = 0; r0 < OH; r0 += rows_per_tile) {
      const int64_t rows = std::min(rows_per_tile, OH - r0), n = rows * OW;
      auto* cp = col.data_as<uint16_t>();
      im2col_rows(xp, C, H, W, KH, KW, p, OW, r0, rows, cp);
      gemm_bf16(O, n, K, wp, K, cp, n, false, bias != nullptr, ob + r0 * OW, OHW);
    }
  }
  return out;
}

}  // namespace diffuse::cpu
