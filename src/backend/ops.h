// The op seam: every numerical operation outside src/backend, documented once.
//
// Models, schedulers and pipeline stages call only these functions. Each dispatches on the device
// of its first tensor argument (Tensor::device) to the backend registered for it (backend.h):
// `cpu` (src/backend/cpu, optimised kernels) or `reference` (src/backend/reference, plain loop
// nests, the twin every optimised kernel is tested against by tests/backend, as ggml's
// test-backend-ops). Results carry the device of that argument. op_table.h lists the ops for the
// machinery; this header says what they compute.
//
// Conventions: tensors are contiguous F32 unless stated; images are NCHW; token sequences are
// [batch, length, channels]. Ops return new tensors from the activation pool; "_" suffixed ops work
// in place.
#pragma once

#include <vector>

#include "backend/expr.h"
#include "core/attention_kernel.h"
#include "core/tensor.h"
#include "core/weight.h"

namespace diffuse::ops {

// ---- linear algebra
// ------------------------------------------------------------------------------
/// x[..., K] * w[N, K]^T + bias[N]  ->  [..., N]   (torch.nn.Linear). `w` in any Weight form
/// (core/weight.h): F16/BF16 widened exactly, I8 dequantized per output channel, so the result is
/// that of w.to_f32() in every form; with w.compute == BF16, that of bf16(x) and bf16(w.to_f32())
/// (nearest even), the products summed in float32.
Tensor linear(const Tensor& x, const Weight& w, const Tensor* bias);

// ---- convolution and resampling -----------------------------------------------------------------
struct Conv2dParams {
  int stride = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  static Conv2dParams same(int pad, int stride = 1) { return {stride, pad, pad, pad, pad}; }
};
/// x[B,C,H,W] conv w[O,C,kh,kw] (+ bias[O])  ->  [B,O,OH,OW]   (torch.nn.Conv2d, zero padding;
/// `w` in any Weight form, as linear).
Tensor conv2d(const Tensor& x, const Weight& w, const Tensor* bias, const Conv2dParams& p);
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
inline Tensor add(const Tensor& a, const Tensor& b);
/// x[B,C,H,W] += bias[B,C] broadcast over H,W (time-embedding injection)
void add_channel_bias_(Tensor& x, const Tensor& bias);
/// x *= s
void scale_(Tensor& x, float s);
/// x = min(max(x, lo), hi)   (torch.clamp; the VAE posterior clamps its log-variance)
void clamp_(Tensor& x, float lo, float hi);
/// x[..., *rows.shape] += rows, broadcast over the leading dimensions (position embeddings).
void add_broadcast_(Tensor& x, const Tensor& rows);
/// dst = src (same shape; dst keeps its memory).
void copy_(Tensor& dst, const Tensor& src);
/// Concatenate along `dim` (0: batch, 1: channels, 2/3: rows/columns of NCHW); the other
/// dimensions must match.
Tensor concat(const Tensor& a, const Tensor& b, int dim);
inline Tensor concat_channels(const Tensor& a, const Tensor& b) {
  return concat(a, b, 1);
}
/// [n, ...] -> [batch, ...], item i = x[i % n] (a prompt's embedding for every image of a batch).
Tensor repeat_batch(const Tensor& x, int64_t batch);
/// [B,C,H,W] -> [B,H*W,C]
Tensor nchw_to_nlc(const Tensor& x);
/// [B,H*W,C] -> [B,C,H,W]
Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w);
/// Rows of table[V,D] picked by ids (I64 [B,L])  ->  [B,L,D]; ids out of range throw ShapeError.
/// (`table` F32, F16 or BF16, contiguous; rows widened exactly to float32.)
Tensor embedding(const Tensor& ids, const Tensor& table);
/// x[B,L,D] at one position per batch item (I64 positions [B])  ->  [B,D] (CLIP's pooled output).
Tensor select_tokens(const Tensor& x, const Tensor& positions);

// ---- fused element-wise formulas and reductions ------------------------------------------------
/// Evaluates `e` element by element over same-shape F32 inputs (see expr.h: exact float32
/// rounding in the written order); the result has their shape.
Tensor evaluate(const Expr& e, const std::vector<Tensor>& inputs);
/// Imagen's dynamic thresholding per batch item (diffusers' _threshold_sample): s = the `ratio`
/// quantile of |x| (torch.quantile's linear interpolation, in float32), clamped to
/// [1, max_value]; x = clamp(x, -s, s) / s.
void dynamic_threshold_(Tensor& x, float ratio, float max_value);
/// Number of NaN or infinite elements.
int64_t count_nonfinite(const Tensor& x);

// ---- attention ----------------------------------------------------------------------------------
/// Multi-head scaled dot-product attention. q[B,Lq,H*D], k,v[B,Lk,H*D]  ->  [B,Lq,H*D];
/// scale = 1/sqrt(D); `causal` masks keys after the query position (CLIP). Never materialises more
/// than one block of query rows' scores per thread. `compute` is that of the layer's projections
/// (WeightCompute): BF16 multiplies bf16(q) by bf16(k) and the softmax probabilities, rounded to
/// bf16, by bf16(v), the sums and the softmax in float32 (as PyTorch's bf16 autocast). `kernel`
/// picks the algorithm (core/attention_kernel.h); all give the same result to float32 rounding.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal,
                 WeightCompute compute, AttentionKernel kernel = AttentionKernel::Sliced);

inline Tensor add(const Tensor& a, const Tensor& b) {
  return evaluate(expr::in(0) + expr::in(1), {a, b});
}

}  // namespace diffuse::ops
