// Winograd F(4x4, 3x3) convolution of our own (winograd_conv2d.cpp says when and why).
#pragma once

#include "backend/ops.h"

namespace diffuse::cpu {

/// Whether the Winograd kernel applies to (float32 weights of) this convolution, 3x3 stride 1,
/// and is expected to beat the other kernels at this size on this CPU.
bool winograd_conv2d_pays(const Tensor& x, const Tensor& w, const ops::Conv2dParams& p);

/// Floats of transformed input and products a band holds by default (32 MB).
constexpr int64_t kWinogradBandFloats = 8 << 20;

/// out[B,O,OH,OW] = conv(x[B,C,H,W], w[O,C,3,3]) + bias, stride 1, float32; `out` is allocated
/// with its final shape. `band_floats` bounds the transformed tiles held at once (at least one
/// row of tiles is); tests make it small to cut even small maps into several bands.
void winograd_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias,
                     const ops::Conv2dParams& p, Tensor& out,
                     int64_t band_floats = kWinogradBandFloats);

}  // namespace diffuse::cpu
