// Device kernels of the CUDA backend (declared in cuda_kernels.h). Float32 throughout, one thread
// per output element or one block per reduced row; sums in double where the CPU backend sums in
// double (norm statistics, softmax), so the two backends agree to float32 rounding.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "backend/cuda/cuda_kernels.h"

namespace diffuse::cuda::kernels {

namespace {

constexpr int kThreads = 256;

// Grid-stride loops: any n with a bounded grid.
#define DIFFUSE_FOR_EACH(i, n)                                              \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

unsigned grid_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

__global__ void fill_kernel(float* x, int64_t n, float v) {
  DIFFUSE_FOR_EACH(i, n) x[i] = v;
}
__global__ void half_kernel(const __half* s, float* d, int64_t n) {
  DIFFUSE_FOR_EACH(i, n) d[i] = __half2float(s[i]);
}
__global__ void bf16_kernel(const __nv_bfloat16* s, float* d, int64_t n) {
  DIFFUSE_FOR_EACH(i, n) d[i] = __bfloat162float(s[i]);
}
__global__ void dequantize_kernel(const int8_t* s, const float* scales, float* d, int64_t rows,
                                  int64_t cols) {
  DIFFUSE_FOR_EACH(i, rows * cols) d[i] = float(s[i]) * scales[i / cols];
}

__global__ void im2col_kernel(const float* x, float* cols, int64_t B, int64_t C, int64_t H,
                              int64_t W, int64_t KH, int64_t KW, int64_t S, int64_t pt, int64_t pl,
                              int64_t OH, int64_t OW) {
  const int64_t per_image = C * KH * KW * OH * OW;
  DIFFUSE_FOR_EACH(i, B * per_image) {
    const int64_t b = i / per_image, r = i % per_image;
    const int64_t row = r / (OH * OW), pix = r % (OH * OW);
    const int64_t c = row / (KH * KW), kh = row / KW % KH, kw = row % KW;
    const int64_t oh = pix / OW, ow = pix % OW;
    const int64_t ih = oh * S + kh - pt, iw = ow * S + kw - pl;
    cols[i] = (ih < 0 || ih >= H || iw < 0 || iw >= W) ? 0.f : x[((b * C + c) * H + ih) * W + iw];
  }
}

__global__ void row_bias_kernel(float* x, const float* bias, int64_t rows, int64_t cols) {
  DIFFUSE_FOR_EACH(i, rows * cols) x[i] += bias[i % cols];
}
__global__ void channel_bias_kernel(float* x, const float* bias, int64_t B, int64_t C, int64_t S) {
  DIFFUSE_FOR_EACH(i, B * C * S) x[i] += bias[i / S % C];
}
__global__ void per_plane_kernel(float* x, const float* v, int64_t planes, int64_t S) {
  DIFFUSE_FOR_EACH(i, planes * S) x[i] += v[i / S];
}

// torch's nearest rule, as the reference backend: exact 2x halves, else floor(dst * in/out).
__device__ int64_t nearest_source(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst / 2;
  const float scale = float(in) / float(out);
  const int64_t s = int64_t(floorf(float(dst) * scale));
  return s < in - 1 ? s : in - 1;
}
__global__ void upsample_kernel(const float* x, float* out, int64_t BC, int64_t H, int64_t W,
                                int64_t OH, int64_t OW) {
  DIFFUSE_FOR_EACH(i, BC * OH * OW) {
    const int64_t bc = i / (OH * OW), h = i / OW % OH, w = i % OW;
    out[i] = x[(bc * H + nearest_source(h, H, OH)) * W + nearest_source(w, W, OW)];
  }
}

// Block-wide sum of one double per thread (blockDim.x == kThreads).
__device__ double block_sum(double v) {
  __shared__ double partial[kThreads];
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const double total = partial[0];
  __syncthreads();
  return total;
}
__device__ float block_max(float v) {
  __shared__ float partial[kThreads];
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float o = partial[threadIdx.x + s];
      if (o > partial[threadIdx.x]) partial[threadIdx.x] = o;
    }
    __syncthreads();
  }
  const float total = partial[0];
  __syncthreads();
  return total;
}

__global__ void layer_norm_kernel(const float* x, float* out, const float* gamma, const float* beta,
                                  int64_t d, float eps) {
  const float* row = x + blockIdx.x * d;
  float* o = out + blockIdx.x * d;
  double s = 0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += row[i];
  const double mean = block_sum(s) / double(d);
  double q = 0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) q += (row[i] - mean) * (row[i] - mean);
  const double inv = 1.0 / sqrt(block_sum(q) / double(d) + eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
    o[i] = float((row[i] - mean) * inv * gamma[i] + beta[i]);
}

// One block per (batch, group).
__global__ void group_norm_kernel(const float* x, float* out, const float* gamma, const float* beta,
                                  int64_t C, int64_t S, int groups, float eps, bool silu) {
  const int64_t b = blockIdx.x / groups, g = blockIdx.x % groups, cpg = C / groups;
  const int64_t n = cpg * S, base = (b * C + g * cpg) * S;
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[base + i];
  const double mean = block_sum(s) / double(n);
  double q = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    q += (x[base + i] - mean) * (x[base + i] - mean);
  const double inv = 1.0 / sqrt(block_sum(q) / double(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t ch = g * cpg + i / S;
    double y = (x[base + i] - mean) * inv * gamma[ch] + beta[ch];
    if (silu) y = y / (1.0 + exp(-y));
    out[base + i] = float(y);
  }
}

__device__ float gelu(float v) {
  return float(0.5 * double(v) * (1.0 + erf(double(v) / sqrt(2.0))));
}
__global__ void activate_kernel(float* x, int64_t n, Activation a) {
  DIFFUSE_FOR_EACH(i, n) {
    const double v = x[i];
    switch (a) {
      case Activation::Silu:
        x[i] = float(v / (1.0 + exp(-v)));
        break;
      case Activation::Gelu:
        x[i] = gelu(x[i]);
        break;
      case Activation::QuickGelu:
        x[i] = float(v / (1.0 + exp(-1.702 * v)));
        break;
    }
  }
}
__global__ void geglu_kernel(const float* x, float* out, int64_t rows, int64_t d) {
  DIFFUSE_FOR_EACH(i, rows * d) {
    const int64_t r = i / d, c = i % d;
    out[i] = x[r * 2 * d + c] * gelu(x[r * 2 * d + d + c]);
  }
}

// One block per row; NaN-skipping maximum as the CPU's, sum in double.
__global__ void softmax_kernel(float* x, int64_t cols, int64_t causal_offset) {
  float* row = x + blockIdx.x * cols;
  const int64_t valid =
      causal_offset < 0 ? cols : min(cols, causal_offset + int64_t(blockIdx.x) + 1);
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < valid; i += blockDim.x)
    if (row[i] > m) m = row[i];
  m = block_max(m);
  double s = 0;
  for (int64_t i = threadIdx.x; i < valid; i += blockDim.x) s += exp(double(row[i]) - m);
  const double total = block_sum(s);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    row[i] = i < valid ? float(exp(double(row[i]) - m) / total) : 0.f;
}

__global__ void add_kernel(float* a, const float* b, int64_t n) {
  DIFFUSE_FOR_EACH(i, n) a[i] += b[i];
}
__global__ void add_broadcast_kernel(float* x, const float* rows, int64_t n, int64_t period) {
  DIFFUSE_FOR_EACH(i, n) x[i] += rows[i % period];
}
__global__ void scale_kernel(float* x, int64_t n, float s) {
  DIFFUSE_FOR_EACH(i, n) x[i] *= s;
}
__global__ void clamp_kernel(float* x, int64_t n, float lo, float hi) {
  DIFFUSE_FOR_EACH(i, n) {
    const float t = x[i] < lo ? lo : x[i];
    x[i] = t > hi ? hi : t;
  }
}
__global__ void concat_kernel(const float* a, const float* b, float* out, int64_t outer, int64_t ka,
                              int64_t kb, int64_t inner) {
  const int64_t k = ka + kb;
  DIFFUSE_FOR_EACH(i, outer * k * inner) {
    const int64_t o = i / (k * inner), j = i / inner % k, r = i % inner;
    out[i] = j < ka ? a[(o * ka + j) * inner + r] : b[(o * kb + j - ka) * inner + r];
  }
}
__global__ void repeat_kernel(const float* x, float* out, int64_t one, int64_t items, int64_t n) {
  DIFFUSE_FOR_EACH(i, n) out[i] = x[(i / one % items) * one + i % one];
}
__global__ void transpose_kernel(const float* x, float* out, int64_t B, int64_t R, int64_t C) {
  DIFFUSE_FOR_EACH(i, B * R * C) {
    const int64_t b = i / (R * C), c = i / R % C, r = i % R;  // out[b, c, r] = x[b, r, c]
    out[i] = x[(b * R + r) * C + c];
  }
}
__global__ void gather_kernel(const float* table, const int64_t* ids, float* out, int64_t n,
                              int64_t d) {
  DIFFUSE_FOR_EACH(i, n * d) out[i] = table[ids[i / d] * d + i % d];
}
__global__ void select_tokens_kernel(const float* x, const int64_t* positions, float* out,
                                     int64_t B, int64_t L, int64_t D) {
  DIFFUSE_FOR_EACH(i, B * D) {
    const int64_t b = i / D;
    out[i] = x[(b * L + positions[b]) * D + i % D];
  }
}

struct ExprProgram {
  ExprInstr code[kMaxExprCode];
  const float* inputs[kMaxExprInputs];
  int length;
};
// The same instruction semantics as backend/expr_scalar.inl (Code values of backend/expr.h).
__global__ void evaluate_kernel(ExprProgram p, float* out, int64_t n) {
  DIFFUSE_FOR_EACH(i, n) {
    float stack[kMaxExprStack];
    int top = -1;
    for (int k = 0; k < p.length; ++k) {
      const ExprInstr ins = p.code[k];
      switch (ins.code) {
        case 0:  // Input
          stack[++top] = p.inputs[ins.arg][i];
          break;
        case 1:  // Constant
          stack[++top] = ins.value;
          break;
        case 6:  // Neg
          stack[top] = -stack[top];
          break;
        case 7:  // Exp
          stack[top] = expf(stack[top]);
          break;
        case 8:  // Sqrt
          stack[top] = sqrtf(stack[top]);
          break;
        case 9:  // Abs
          stack[top] = fabsf(stack[top]);
          break;
        case 12: {  // Fma
          const float c = stack[top--], b = stack[top--];
          stack[top] = fmaf(stack[top], b, c);
          break;
        }
        case 13: {  // Clamp
          const float hi = stack[top--], lo = stack[top--];
          const float t = stack[top] < lo ? lo : stack[top];
          stack[top] = t > hi ? hi : t;
          break;
        }
        default: {
          const float b = stack[top--], a = stack[top];
          float r = 0.f;
          switch (ins.code) {
            case 2:
              r = __fadd_rn(a, b);
              break;
            case 3:
              r = __fsub_rn(a, b);
              break;
            case 4:
              r = __fmul_rn(a, b);
              break;
            case 5:
              r = __fdiv_rn(a, b);
              break;
            case 10:
              r = (a < b || isnan(a)) ? a : b;
              break;
            case 11:
              r = (a > b || isnan(a)) ? a : b;
              break;
          }
          stack[top] = r;
        }
      }
    }
    out[i] = stack[0];
  }
}

__global__ void nonfinite_kernel(const float* x, int64_t n, unsigned long long* count) {
  unsigned long long local = 0;
  DIFFUSE_FOR_EACH(i, n) local += isfinite(x[i]) ? 0 : 1;
  if (local) atomicAdd(count, local);
}

}  // namespace

void fill(float* x, int64_t n, float value) {
  fill_kernel<<<grid_for(n), kThreads>>>(x, n, value);
}
void half_to_float(const uint16_t* src, float* dst, int64_t n) {
  half_kernel<<<grid_for(n), kThreads>>>(reinterpret_cast<const __half*>(src), dst, n);
}
void bf16_to_float(const uint16_t* src, float* dst, int64_t n) {
  bf16_kernel<<<grid_for(n), kThreads>>>(reinterpret_cast<const __nv_bfloat16*>(src), dst, n);
}
void dequantize_rows(const int8_t* src, const float* scales, float* dst, int64_t rows,
                     int64_t cols) {
  dequantize_kernel<<<grid_for(rows * cols), kThreads>>>(src, scales, dst, rows, cols);
}
void im2col(const float* x, float* cols, int64_t B, int64_t C, int64_t H, int64_t W, int64_t KH,
            int64_t KW, int64_t stride, int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW) {
  im2col_kernel<<<grid_for(B * C * KH * KW * OH * OW), kThreads>>>(
      x, cols, B, C, H, W, KH, KW, stride, pad_top, pad_left, OH, OW);
}
void add_row_bias(float* x, const float* bias, int64_t rows, int64_t cols) {
  row_bias_kernel<<<grid_for(rows * cols), kThreads>>>(x, bias, rows, cols);
}
void add_channel_bias(float* x, const float* bias, int64_t B, int64_t C, int64_t S) {
  channel_bias_kernel<<<grid_for(B * C * S), kThreads>>>(x, bias, B, C, S);
}
void add_per_plane(float* x, const float* values, int64_t planes, int64_t S) {
  per_plane_kernel<<<grid_for(planes * S), kThreads>>>(x, values, planes, S);
}
void upsample_nearest(const float* x, float* out, int64_t BC, int64_t H, int64_t W, int64_t OH,
                      int64_t OW) {
  upsample_kernel<<<grid_for(BC * OH * OW), kThreads>>>(x, out, BC, H, W, OH, OW);
}
void layer_norm(const float* x, float* out, const float* gamma, const float* beta, int64_t rows,
                int64_t d, float eps) {
  if (rows > 0) layer_norm_kernel<<<unsigned(rows), kThreads>>>(x, out, gamma, beta, d, eps);
}
void group_norm(const float* x, float* out, const float* gamma, const float* beta, int64_t B,
                int64_t C, int64_t S, int groups, float eps, bool silu) {
  if (B > 0)
    group_norm_kernel<<<unsigned(B * groups), kThreads>>>(x, out, gamma, beta, C, S, groups, eps,
                                                          silu);
}
void activate(float* x, int64_t n, Activation a) {
  activate_kernel<<<grid_for(n), kThreads>>>(x, n, a);
}
void geglu(const float* x, float* out, int64_t rows, int64_t d) {
  geglu_kernel<<<grid_for(rows * d), kThreads>>>(x, out, rows, d);
}
void softmax_rows(float* x, int64_t rows, int64_t cols, int64_t causal_offset) {
  if (rows > 0) softmax_kernel<<<unsigned(rows), kThreads>>>(x, cols, causal_offset);
}
void add(float* a, const float* b, int64_t n) {
  add_kernel<<<grid_for(n), kThreads>>>(a, b, n);
}
void add_broadcast(float* x, const float* rows, int64_t n, int64_t period) {
  add_broadcast_kernel<<<grid_for(n), kThreads>>>(x, rows, n, period);
}
void scale(float* x, int64_t n, float s) {
  scale_kernel<<<grid_for(n), kThreads>>>(x, n, s);
}
void clamp(float* x, int64_t n, float lo, float hi) {
  clamp_kernel<<<grid_for(n), kThreads>>>(x, n, lo, hi);
}
void concat(const float* a, const float* b, float* out, int64_t outer, int64_t ka, int64_t kb,
            int64_t inner) {
  concat_kernel<<<grid_for(outer * (ka + kb) * inner), kThreads>>>(a, b, out, outer, ka, kb, inner);
}
void repeat_batch(const float* x, float* out, int64_t one, int64_t items, int64_t n) {
  repeat_kernel<<<grid_for(n), kThreads>>>(x, out, one, items, n);
}
void transpose_last_two(const float* x, float* out, int64_t B, int64_t rows, int64_t cols) {
  transpose_kernel<<<grid_for(B * rows * cols), kThreads>>>(x, out, B, rows, cols);
}
void gather_rows(const float* table, const int64_t* ids, float* out, int64_t n, int64_t d) {
  gather_kernel<<<grid_for(n * d), kThreads>>>(table, ids, out, n, d);
}
void select_tokens(const float* x, const int64_t* positions, float* out, int64_t B, int64_t L,
                   int64_t D) {
  select_tokens_kernel<<<grid_for(B * D), kThreads>>>(x, positions, out, B, L, D);
}
void evaluate(const ExprInstr* code, int code_length, const float* const* inputs, int input_count,
              float* out, int64_t n) {
  ExprProgram p{};
  for (int i = 0; i < code_length; ++i) p.code[i] = code[i];
  for (int i = 0; i < input_count; ++i) p.inputs[i] = inputs[i];
  p.length = code_length;
  evaluate_kernel<<<grid_for(n), kThreads>>>(p, out, n);
}
void count_nonfinite(const float* x, int64_t n, unsigned long long* count) {
  nonfinite_kernel<<<grid_for(n), kThreads>>>(x, n, count);
}

}  // namespace diffuse::cuda::kernels
