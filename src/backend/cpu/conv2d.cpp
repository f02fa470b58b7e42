// 2-D convolution: 3x3 stride-1 layers through our Winograd kernel where oneDNN has none
// (winograd_conv2d.cpp), oneDNN's direct or Winograd kernels on large maps (conv2d_direct.cpp),
// else im2col + GEMM (conv_as_gemm.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/conv2d_direct.h"
#include "backend/cpu/conv_as_gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/winograd_conv2d.h"
#include "backend/op_checks.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::cpu {

namespace {
constexpr int64_t kColumnBudgetFloats = 4 << 20;  // 16 MB of im2col per tile
}

Tensor conv2d(const Tensor& x, const Weight& weight, const Tensor* bias, const Conv2dParams& p) {
  if (weight.compute == WeightCompute::BF16) return conv2d_bf16(x, weight, bias, p);
  require_f32_contiguous(x, "conv2d input");
  const Tensor w = widened(weight);
  int64_t OH = 0, OW = 0;
  op_checks::conv2d(x, w, bias, p, &OH, &OW);
  const ConvGemmShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0),
                        w.dim(2), w.dim(3), OH,       OW};
  Tensor out = Tensor::empty({s.B, s.O, OH, OW});
  if (!onednn_has_winograd() && winograd_conv2d_pays(w, p, out)) {
    winograd_conv2d(x, w, bias, p, out);
    return out;
  }
  if (!conv_is_pointwise(s, p) && direct_conv2d_pays(OH, OW, s.KH, s.KW) &&
      direct_conv2d(x, w, bias, p, out))
    return out;
  conv2d_as_gemm(s, x.f32(), w.f32(), bias ? bias->f32() : nullptr, p, kColumnBudgetFloats,
                 out.f32(),
                 [](int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                    int64_t ldb, bool accumulate, float* c, int64_t ldc) {
                   gemm(false, false, m, n, k, 1.f, a, lda, b, ldb, accumulate ? 1.f : 0.f, c, ldc);
                 });
  return out;
}

Tensor upsample_nearest_2x(const Tensor& x) {
  require_f32_contiguous(x, "upsample input");
  if (x.ndim() != 4) throw ShapeError("upsample: expected NCHW, got " + x.shape().str());
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor out = Tensor::empty({B, C, 2 * H, 2 * W});
  const float* s = x.f32();
  float* d = out.f32();
  parallel_for(B * C, [&](int64_t p0, int64_t p1) {
    for (int64_t pc = p0; pc < p1; ++pc) {
      const float* sp = s + pc * H * W;
      float* dp = d + pc * 4 * H * W;
      for (int64_t h = 0; h < H; ++h) {
        float* row = dp + 2 * h * 2 * W;
        for (int64_t ww = 0; ww < W; ++ww) row[2 * ww] = row[2 * ww + 1] = sp[h * W + ww];
        std::memcpy(row + 2 * W, row, sizeof(float) * static_cast<size_t>(2 * W));
      }
    }
  });
  return out;
}

namespace {
// torch's nearest_idx (aten/src/ATen/native/UpSample.h): exact halving for 2x, otherwise the
// source index from a float scale, clamped to the last row/column.
inline int64_t nearest_source_index(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  return std::min(static_cast<int64_t>(std::floor(static_cast<float>(dst) * scale)), in - 1);
}
}  // namespace

Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
  require_f32_contiguous(x, "upsample input");
  if (x.ndim() != 4 || out_h <= 0 || out_w <= 0)
    throw ShapeError("upsample: cannot resize " + x.shape().str() + " to " + std::to_string(out_h) +
                     "x" + std::to_string(out_w));
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  if (out_h == 2 * H && out_w == 2 * W) return upsample_nearest_2x(x);
  std::vector<int64_t> src_w(static_cast<size_t>(out_w));
  for (int64_t ow = 0; ow < out_w; ++ow)
    src_w[static_cast<size_t>(ow)] = nearest_source_index(ow, W, out_w);
  Tensor out = Tensor::empty({B, C, out_h, out_w});
  const float* s = x.f32();
  float* d = out.f32();
  parallel_for(B * C, [&](int64_t p0, int64_t p1) {
    for (int64_t pc = p0; pc < p1; ++pc)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const float* srow = s + (pc * H + nearest_source_index(oh, H, out_h)) * W;
        float* drow = d + (pc * out_h + oh) * out_w;
        for (int64_t ow = 0; ow < out_w; ++ow) drow[ow] = srow[src_w[static_cast<size_t>(ow)]];
      }
  });
  return out;
}

}  // namespace diffuse::cpu
