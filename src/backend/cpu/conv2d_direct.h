// Direct convolution through oneDNN's JIT kernels (conv2d_direct.cpp says when and why).
#pragma once

#include "backend/ops.h"

namespace diffuse::cpu {

/// Whether the direct kernel is expected to beat im2col + GEMM for this output size and kernel.
bool direct_conv2d_pays(int64_t out_h, int64_t out_w, int64_t kernel_h, int64_t kernel_w);

/// Whether oneDNN has a float32 Winograd kernel on this CPU (oneDNN 2.6: AVX-512 only), which
/// direct_conv2d then uses on large maps.
bool onednn_has_winograd();

/// out[B,O,OH,OW] = conv(x[B,C,H,W], w[O,C,KH,KW]) + bias; `out` is allocated with its final
/// shape. `w` F32 computes in float32; `w` BF16 rounds x to bfloat16 and sums the bf16 products in
/// float32 (WeightCompute::BF16). Returns false, having written nothing, when oneDNN has no kernel
/// for these shapes.
bool direct_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const ops::Conv2dParams& p,
                   Tensor& out);

}  // namespace diffuse::cpu
