// Winograd F(4x4, 3x3) convolution of our own (winograd_conv2d.cpp says when and why).
#pragma once

#include "backend/ops.h"

namespace diffuse::cpu {

/// Whether the Winograd kernel applies to (float32 weights of) this convolution, 3x3 stride 1,
/// and is expected to beat the other kernels at this size on this CPU; `out` is the result's
/// tensor, [B, O, OH, OW].
bool winograd_conv2d_pays(const Tensor& w, const ops::Conv2dParams& p, const Tensor& out);

/// The workspace a call holds at once, in floats; tests make both small to cut even small layers
/// into several bands and blocks.
struct WinogradBudget {
  /// Transformed input tiles and products of a band of tile rows (at least one row): 32 MB.
  int64_t band_floats = 8 << 20;
  /// Transformed weights of a block of output channels (at least one channel): 64 MB, all of a
  /// 640 x 640-channel layer's.
  int64_t weight_floats = 16 << 20;
};

/// out[B,O,OH,OW] = conv(x[B,C,H,W], w[O,C,3,3]) + bias, stride 1, float32; `out` is allocated
/// with its final shape.
void winograd_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias,
                     const ops::Conv2dParams& p, Tensor& out, const WinogradBudget& budget = {});

}  // namespace diffuse::cpu
