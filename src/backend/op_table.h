// The list of backend ops, written once: X(return type, name, (parameters), (arguments), the
// argument whose device picks the backend). backend.h turns it into the Backend function table,
// ops.cpp into the dispatchers of ops.h, and each backend into its kernel declarations, so adding
// an op is one line here plus one kernel per backend (the compiler finds the ones missing).
#pragma once

#define DIFFUSE_BACKEND_OPS(X)                                                                     \
  X(Tensor, linear, (const Tensor& x, const Weight& w, const Tensor* bias), (x, w, bias), x)       \
  X(Tensor, conv2d, (const Tensor& x, const Weight& w, const Tensor* bias, const Conv2dParams& p), \
    (x, w, bias, p), x)                                                                            \
  X(Tensor, upsample_nearest_2x, (const Tensor& x), (x), x)                                        \
  X(Tensor, upsample_nearest, (const Tensor& x, int64_t out_h, int64_t out_w), (x, out_h, out_w),  \
    x)                                                                                             \
  X(Tensor, layer_norm, (const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps),     \
    (x, gamma, beta, eps), x)                                                                      \
  X(Tensor, group_norm,                                                                            \
    (const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,              \
     bool fuse_silu),                                                                              \
    (x, groups, gamma, beta, eps, fuse_silu), x)                                                   \
  X(void, silu_, (Tensor & x), (x), x)                                                             \
  X(void, gelu_, (Tensor & x), (x), x)                                                             \
  X(void, quick_gelu_, (Tensor & x), (x), x)                                                       \
  X(Tensor, geglu, (const Tensor& x), (x), x)                                                      \
  X(void, softmax_, (Tensor & x), (x), x)                                                          \
  X(void, add_, (Tensor & a, const Tensor& b), (a, b), a)                                          \
  X(void, add_channel_bias_, (Tensor & x, const Tensor& bias), (x, bias), x)                       \
  X(void, add_broadcast_, (Tensor & x, const Tensor& rows), (x, rows), x)                          \
  X(void, scale_, (Tensor & x, float s), (x, s), x)                                                \
  X(void, clamp_, (Tensor & x, float lo, float hi), (x, lo, hi), x)                                \
  X(void, copy_, (Tensor & dst, const Tensor& src), (dst, src), dst)                               \
  X(Tensor, concat, (const Tensor& a, const Tensor& b, int dim), (a, b, dim), a)                   \
  X(Tensor, repeat_batch, (const Tensor& x, int64_t batch), (x, batch), x)                         \
  X(Tensor, nchw_to_nlc, (const Tensor& x), (x), x)                                                \
  X(Tensor, nlc_to_nchw, (const Tensor& x, int64_t h, int64_t w), (x, h, w), x)                    \
  X(Tensor, embedding, (const Tensor& ids, const Tensor& table), (ids, table), ids)                \
  X(Tensor, select_tokens, (const Tensor& x, const Tensor& positions), (x, positions), x)          \
  X(Tensor, attention,                                                                             \
    (const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal,                    \
     WeightCompute compute, AttentionKernel kernel),                                               \
    (q, k, v, heads, causal, compute, kernel), q)                                                  \
  X(Tensor, evaluate, (const Expr& e, const std::vector<Tensor>& inputs), (e, inputs),             \
    inputs.at(0))                                                                                  \
  X(void, dynamic_threshold_, (Tensor & x, float ratio, float max_value), (x, ratio, max_value),   \
    x)                                                                                             \
  X(int64_t, count_nonfinite, (const Tensor& x), (x), x)

/// Declares every op as a free function in the enclosing namespace (a backend's kernels).
#define DIFFUSE_DECLARE_OP(ret, name, params, args, primary) ret name params;
