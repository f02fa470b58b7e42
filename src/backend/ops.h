// The op seam: every numerical operation the models use, declared once.
//
// Models call only these functions. Each is implemented by the CPU backend (src/backend/cpu) and
// has a plain loop-nest twin in src/backend/reference (namespace diffuse::ref, same signatures)
// that tests/backend compares it against, in the spirit of ggml's test-backend-ops. A CUDA backend
// adds a device tag to Tensor and dispatches here; model code does not change.
//
// Conventions: tensors are contiguous F32 unless stated; images are NCHW; token sequences are
// [batch, length, channels]. Ops return new tensors from the activation pool; "_" suffixed ops work
// in place.
#pragma once

#include "core/tensor.h"

namespace diffuse::ops {

// ---- linear algebra
// ------------------------------------------------------------------------------
/// C[M,N] = alpha * op(A) op(B) + beta * C on raw row-major buffers (BLAS semantics), parallelised
/// over the shared thread pool.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
/// x[..., K] * w[N, K]^T + bias[N]  ->  [..., N]   (torch.nn.Linear)
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias);

// ---- convolution and resampling -----------------------------------------------------------------
struct Conv2dParams {
  int stride = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  static Conv2dParams same(int pad, int stride = 1) { return {stride, pad, pad, pad, pad}; }
};
/// x[B,C,H,W] conv w[O,C,kh,kw] (+ bias[O])  ->  [B,O,OH,OW]   (torch.nn.Conv2d, zero padding)
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p);
/// Nearest-neighbour 2x upsampling of [B,C,H,W].
Tensor upsample_nearest_2x(const Tensor& x);
/// Nearest-neighbour resize of [B,C,H,W] to [B,C,out_h,out_w] with torch's "nearest" rule
/// (F.interpolate(size=..., mode="nearest")): src = min(floor(dst * (float)in / out), in - 1),
/// exactly dst / 2 when out == 2 * in. The UNet needs it when a skip connection has an odd size.
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w);

// ---- normalisation ------------------------------------------------------------------------------
/// Layer norm over the last dimension with affine gamma/beta.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
/// Group norm of [B,C,...] over `groups` channel groups, affine per channel, optional fused SiLU.
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool fuse_silu);

// ---- activations and element-wise
// ----------------------------------------------------------------
void silu_(Tensor& x);
void gelu_(Tensor& x);        // exact (erf) GELU
void quick_gelu_(Tensor& x);  // x * sigmoid(1.702 x), CLIP's activation
/// GEGLU: x[..., 2D] -> x[..., :D] * gelu(x[..., D:])
Tensor geglu(const Tensor& x);
/// Softmax over the last dimension, in place.
void softmax_(Tensor& x);
/// a += b (same shape)
void add_(Tensor& a, const Tensor& b);
/// out = a + b (same shape)
Tensor add(const Tensor& a, const Tensor& b);
/// x[B,C,H,W] += bias[B,C] broadcast over H,W (time-embedding injection)
void add_channel_bias_(Tensor& x, const Tensor& bias);
/// x *= s
void scale_(Tensor& x, float s);
/// x = min(max(x, lo), hi)   (torch.clamp; the VAE posterior clamps its log-variance)
void clamp_(Tensor& x, float lo, float hi);
/// Concatenate [B,C1,H,W] and [B,C2,H,W] along channels.
Tensor concat_channels(const Tensor& a, const Tensor& b);
/// [B,C,H,W] -> [B,H*W,C]
Tensor nchw_to_nlc(const Tensor& x);
/// [B,H*W,C] -> [B,C,H,W]
Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w);
/// Rows of table[V,D] picked by ids (I64 [B,L])  ->  [B,L,D]; ids out of range throw ShapeError.
Tensor embedding(const Tensor& ids, const Tensor& table);

// ---- attention ----------------------------------------------------------------------------------
/// Multi-head scaled dot-product attention. q[B,Lq,H*D], k,v[B,Lk,H*D]  ->  [B,Lq,H*D];
/// scale = 1/sqrt(D); `causal` masks keys after the query position (CLIP). Never materialises more
/// than one block of query rows' scores per thread.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal);

}  // namespace diffuse::ops
