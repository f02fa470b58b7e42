// im2col for the convolutions that run as GEMMs (conv2d.cpp: float32; bf16_layers.cpp: bfloat16).
#pragma once

#include <algorithm>
#include <cstring>

#include "backend/ops.h"
#include "core/thread_pool.h"

namespace diffuse::cpu {

/// The column matrix of output rows [r0, r0 + rows) of one image x[C,H,W]:
/// col[(c,kh,kw), (r,ow)] = x[c, (r0+r)*S + kh - pad_top, ow*S + kw - pad_left], 0 outside.
/// `col` holds C*KH*KW rows of rows*OW values, `ld` apart (ld >= rows*OW: the columns of several
/// images side by side).
template <typename T>
void im2col_rows(const T* x, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                 const ops::Conv2dParams& p, int64_t OW, int64_t r0, int64_t rows, T* col,
                 int64_t ld) {
  const int64_t S = p.stride, K = C * KH * KW;
  parallel_for(
      K,
      [&](int64_t k0, int64_t k1) {
        for (int64_t kk = k0; kk < k1; ++kk) {
          const int64_t c = kk / (KH * KW), kh = (kk / KW) % KH, kw = kk % KW;
          T* dst = col + kk * ld;
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t ih = (r0 + r) * S + kh - p.pad_top;
            T* drow = dst + r * OW;
            if (ih < 0 || ih >= H) {
              std::fill(drow, drow + OW, T{});
              continue;
            }
            const T* srow = x + (c * H + ih) * W;
            // Columns whose input lies inside the row: [lo, hi); zeros either side.
            const int64_t shift = kw - p.pad_left;
            const int64_t lo = std::clamp<int64_t>((-shift + S - 1) / S, 0, OW);
            const int64_t hi = std::clamp<int64_t>((W - shift + S - 1) / S, lo, OW);
            std::fill(drow, drow + lo, T{});
            if (S == 1) {
              std::memcpy(drow + lo, srow + lo + shift, sizeof(T) * size_t(hi - lo));
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) drow[ow] = srow[ow * S + shift];
            }
            std::fill(drow + hi, drow + OW, T{});
          }
        }
      },
      8);
}

}  // namespace diffuse::cpu
