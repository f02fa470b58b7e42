// Plain loop-nest implementations of the ops in backend/ops.h: slow, obviously correct, and the
// yardstick every optimised backend is tested against (tests/backend).
#pragma once

#include "backend/ops.h"

namespace diffuse::ref {

using ops::Conv2dParams;

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias);
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p);
Tensor upsample_nearest_2x(const Tensor& x);
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool fuse_silu);
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);
Tensor quick_gelu(const Tensor& x);
Tensor geglu(const Tensor& x);
Tensor softmax(const Tensor& x);
Tensor clamp(const Tensor& x, float lo, float hi);
Tensor nchw_to_nlc(const Tensor& x);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal);

}  // namespace diffuse::ref
