// The CUDA backend's device kernels, as plain C++ launchers over raw device pointers (compiled by
// nvcc in cuda_kernels.cu; called by the host-side ops in cuda_ops.cpp). All float32 and
// contiguous; each launches on the default stream and returns without waiting. Shapes are checked
// by the callers.
#pragma once

#include <cstdint>

namespace diffuse::cuda::kernels {

/// Postfix Expr code for the evaluator: the same instruction set as backend/expr.h.
struct ExprInstr {
  uint8_t code;
  int32_t arg;
  float value;
};
constexpr int kMaxExprInputs = 8, kMaxExprCode = 64, kMaxExprStack = 16;

void fill(float* x, int64_t n, float value);
void half_to_float(const uint16_t* src, float* dst, int64_t n);
void bf16_to_float(const uint16_t* src, float* dst, int64_t n);
/// dst[r, c] = src[r, c] * scales[r] (int8 per-output-channel weights).
void dequantize_rows(const int8_t* src, const float* scales, float* dst, int64_t rows,
                     int64_t cols);

/// [B, C, H, W] -> columns [B][C*KH*KW, OH*OW] (zero padding).
void im2col(const float* x, float* cols, int64_t B, int64_t C, int64_t H, int64_t W, int64_t KH,
            int64_t KW, int64_t stride, int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW);
/// x[rows, cols] += bias[cols] (linear) or x[B, C, S] += bias[C] (conv).
void add_row_bias(float* x, const float* bias, int64_t rows, int64_t cols);
void add_channel_bias(float* x, const float* bias, int64_t B, int64_t C, int64_t S);
/// x[bc, s] += bias[bc] (add_channel_bias_: one value per (batch, channel)).
void add_per_plane(float* x, const float* values, int64_t planes, int64_t S);

void upsample_nearest(const float* x, float* out, int64_t BC, int64_t H, int64_t W, int64_t OH,
                      int64_t OW);
void layer_norm(const float* x, float* out, const float* gamma, const float* beta, int64_t rows,
                int64_t d, float eps);
void group_norm(const float* x, float* out, const float* gamma, const float* beta, int64_t B,
                int64_t C, int64_t S, int groups, float eps, bool silu);

enum class Activation : uint8_t { Silu, Gelu, QuickGelu };
void activate(float* x, int64_t n, Activation a);
void geglu(const float* x, float* out, int64_t rows, int64_t d);
/// Softmax of each row of `cols` values, the first `valid(r)` kept: all of them, or with
/// `causal_offset` >= 0 those up to column causal_offset + r (later ones become 0).
void softmax_rows(float* x, int64_t rows, int64_t cols, int64_t causal_offset);
void add(float* a, const float* b, int64_t n);
void add_broadcast(float* x, const float* rows, int64_t n, int64_t period);
void scale(float* x, int64_t n, float s);
void clamp(float* x, int64_t n, float lo, float hi);
/// out = concat of a [outer, ka, inner] and b [outer, kb, inner] along the middle dimension.
void concat(const float* a, const float* b, float* out, int64_t outer, int64_t ka, int64_t kb,
            int64_t inner);
void repeat_batch(const float* x, float* out, int64_t one, int64_t items, int64_t n);
/// [B, C, L] <-> [B, L, C].
void transpose_last_two(const float* x, float* out, int64_t B, int64_t rows, int64_t cols);
/// out[i, :] = table[ids[i], :] (ids checked in range by the caller).
void gather_rows(const float* table, const int64_t* ids, float* out, int64_t n, int64_t d);
/// out[b, :] = x[b, positions[b], :].
void select_tokens(const float* x, const int64_t* positions, float* out, int64_t B, int64_t L,
                   int64_t D);
void evaluate(const ExprInstr* code, int code_length, const float* const* inputs, int input_count,
              float* out, int64_t n);
/// Elements of x that are NaN or infinite, summed into *count (a device int64, zeroed first).
void count_nonfinite(const float* x, int64_t n, unsigned long long* count);

}  // namespace diffuse::cuda::kernels
