// A convolution as GEMMs over im2col column matrices, shared by the float32 (conv2d.cpp) and
// bfloat16 (bf16_layers.cpp) paths, which differ only in the element type and the GEMM called.
//
// Two schedules:
// - Per image, tiled over output rows so the column buffer stays within a budget (a 512x512 VAE
//   layer would otherwise need a 1 GB column matrix); 1x1 stride-1 convolutions use the image
//   itself as the column matrix.
// - Small maps (the UNet's deep levels, a few hundred pixels against up to 2560x11520 weights):
//   the columns of every image of the batch side by side and one GEMM, so the weight matrix is
//   streamed once per call instead of once per image and the GEMM's n is B times larger. The
//   product lands in a [O, B*OH*OW] buffer that is then copied out image by image.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "backend/cpu/im2col.h"
#include "backend/cpu/kernels.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace diffuse::cpu {

/// Shapes of a convolution run as GEMMs: x [B, C, H, W] -> out [B, O, OH, OW], kernel KH x KW.
struct ConvGemmShape {
  int64_t B, C, H, W, O, KH, KW, OH, OW;
  int64_t K() const { return C * KH * KW; }
  int64_t pixels() const { return OH * OW; }
};

/// A 1x1, stride-1, unpadded convolution: the image is its own column matrix.
inline bool conv_is_pointwise(const ConvGemmShape& s, const ops::Conv2dParams& p) {
  return s.KH == 1 && s.KW == 1 && p.stride == 1 && p.pad_top == 0 && p.pad_left == 0 &&
         p.pad_bottom == 0 && p.pad_right == 0;
}

/// The tensor dtype of column matrices of T: float32, or bfloat16 bits.
template <typename T>
constexpr DType kColumnDType = std::is_same_v<T, float> ? DType::F32 : DType::BF16;

/// Whether the batched schedule applies: several images, small maps, and all their columns within
/// `column_budget` values.
inline bool conv_batches_images(const ConvGemmShape& s, int64_t column_budget) {
  constexpr int64_t kMaxBatchedPixels = 512;  // per image: 16x16 and below
  return s.B > 1 && s.pixels() <= kMaxBatchedPixels && s.K() * s.B * s.pixels() <= column_budget;
}

/// out = conv(x, w) + bias with out [B, O, OH*OW] float32, x and w of element type T, through
/// `gemm(m, n, k, a, lda, b, ldb, accumulate, c, ldc)` computing C (+)= A B row-major.
template <typename T, typename Gemm>
void conv2d_as_gemm(const ConvGemmShape& s, const T* x, const T* w, const float* bias,
                    const ops::Conv2dParams& p, int64_t column_budget, float* out,
                    const Gemm& gemm) {
  const int64_t K = s.K(), OHW = s.pixels(), O = s.O;
  const bool accumulate = bias != nullptr;
  if (conv_batches_images(s, column_budget)) {
    const int64_t n = s.B * OHW;
    Tensor col = Tensor::empty({K, n}, kColumnDType<T>);
    Tensor product = Tensor::empty({O, n});
    for (int64_t b = 0; b < s.B; ++b)
      im2col_rows(x + b * s.C * s.H * s.W, s.C, s.H, s.W, s.KH, s.KW, p, s.OW, 0, s.OH,
                  col.data_as<T>() + b * OHW, n);
    if (bias) fill_with_bias(product.f32(), O, n, bias, true);
    gemm(O, n, K, w, K, col.data_as<T>(), n, accumulate, product.f32(), n);
    const float* src = product.f32();
    parallel_for(
        O,
        [&](int64_t o0, int64_t o1) {
          for (int64_t o = o0; o < o1; ++o)
            for (int64_t b = 0; b < s.B; ++b)
              std::memcpy(out + (b * O + o) * OHW, src + o * n + b * OHW,
                          sizeof(float) * size_t(OHW));
        },
        8);
    return;
  }
  const bool pointwise = conv_is_pointwise(s, p);
  const int64_t rows_per_tile =
      std::clamp<int64_t>(column_budget / std::max<int64_t>(K * s.OW, 1), 1, s.OH);
  Tensor col = pointwise ? Tensor() : Tensor::empty({K, rows_per_tile * s.OW}, kColumnDType<T>);
  for (int64_t b = 0; b < s.B; ++b) {
    const T* xb = x + b * s.C * s.H * s.W;
    float* ob = out + b * O * OHW;
    if (bias) fill_with_bias(ob, O, OHW, bias, true);
    if (pointwise) {
      gemm(O, OHW, s.C, w, s.C, xb, OHW, accumulate, ob, OHW);
      continue;
    }
    for (int64_t r0 = 0; r0 < s.OH; r0 += rows_per_tile) {
      const int64_t rows = std::min(rows_per_tile, s.OH - r0), n = rows * s.OW;
      T* cp = col.data_as<T>();
      im2col_rows(xb, s.C, s.H, s.W, s.KH, s.KW, p, s.OW, r0, rows, cp, n);
      gemm(O, n, K, w, K, cp, n, accumulate, ob + r0 * s.OW, OHW);
    }
  }
}

}  // namespace diffuse::cpu
