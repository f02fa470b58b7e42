#include "backend/reference/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/dynamic_threshold.h"
#include "backend/op_checks.h"
#include "diffuse/error.hpp"

namespace diffuse::ref {

namespace {

/// What a layer multiplies (WeightCompute): x and w.to_f32() as they are, or both rounded to
/// bfloat16 (the sums stay float32 or wider either way).
struct LayerOperands {
  Tensor x, w;
};

Tensor rounded_to_bf16(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), DType::F32, t.device());
  const float* s = t.f32();
  float* d = out.f32();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = bf16_to_float(float_to_bf16(s[i]));
  return out;
}

LayerOperands layer_operands(const Tensor& x, const Weight& weight) {
  if (weight.compute == WeightCompute::BF16)
    return {rounded_to_bf16(x), rounded_to_bf16(weight.to_f32())};
  return {x, weight.to_f32()};
}

}  // namespace

Tensor linear(const Tensor& x_in, const Weight& weight, const Tensor* bias) {
  require_f32_contiguous(x_in, "linear input");
  const auto [x, w] = layer_operands(x_in, weight);
  op_checks::linear(x, w, bias);
  const int64_t k = w.dim(1), n = w.dim(0), m = x.numel() / k;
  Shape s = x.shape();
  s[-1] = n;
  Tensor out = Tensor::empty(s);
  const float *xp = x.f32(), *wp = w.f32(), *bp = bias ? bias->f32() : nullptr;
  float* op = out.f32();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = bp ? bp[j] : 0.0;
      for (int64_t t = 0; t < k; ++t) acc += double(xp[i * k + t]) * wp[j * k + t];
      op[i * n + j] = static_cast<float>(acc);
    }
  return out;
}

Tensor conv2d(const Tensor& x_in, const Weight& weight, const Tensor* bias, const Conv2dParams& p) {
  require_f32_contiguous(x_in, "conv2d input");
  const auto [x, w] = layer_operands(x_in, weight);
  int64_t OH = 0, OW = 0;
  op_checks::conv2d(x, w, bias, p, &OH, &OW);
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t O = w.dim(0), KH = w.dim(2), KW = w.dim(3), S = p.stride;
  Tensor out = Tensor::empty({B, O, OH, OW});
  const float *xp = x.f32(), *wp = w.f32(), *bp = bias ? bias->f32() : nullptr;
  float* op = out.f32();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = bp ? bp[o] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * S + kh - p.pad_top, iw = ow * S + kw - p.pad_left;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += double(xp[((b * C + c) * H + ih) * W + iw]) *
                       wp[((o * C + c) * KH + kh) * KW + kw];
              }
          op[((b * O + o) * OH + oh) * OW + ow] = static_cast<float>(acc);
        }
  return out;
}

Tensor upsample_nearest_2x(const Tensor& x) {
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor out = Tensor::empty({B, C, 2 * H, 2 * W});
  for (int64_t bc = 0; bc < B * C; ++bc)
    for (int64_t h = 0; h < 2 * H; ++h)
      for (int64_t w = 0; w < 2 * W; ++w)
        out.f32()[(bc * 2 * H + h) * 2 * W + w] = x.f32()[(bc * H + h / 2) * W + w / 2];
  return out;
}

Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  // torch's rule: integer halving for exact 2x, else floor(dst * float(in / out)) clamped.
  auto src = [](int64_t dst, int64_t in, int64_t out) -> int64_t {
    if (out == in) return dst;
    if (out == 2 * in) return dst / 2;
    const float scale = float(in) / float(out);
    return std::min<int64_t>(int64_t(std::floor(float(dst) * scale)), in - 1);
  };
  Tensor out = Tensor::empty({B, C, out_h, out_w});
  for (int64_t bc = 0; bc < B * C; ++bc)
    for (int64_t h = 0; h < out_h; ++h)
      for (int64_t w = 0; w < out_w; ++w)
        out.f32()[(bc * out_h + h) * out_w + w] =
            x.f32()[(bc * H + src(h, H, out_h)) * W + src(w, W, out_w)];
  return out;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  const int64_t d = x.dim(-1), rows = x.numel() / d;
  Tensor out = Tensor::empty(x.shape());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += x.f32()[r * d + i];
    mean /= double(d);
    for (int64_t i = 0; i < d; ++i) var += std::pow(x.f32()[r * d + i] - mean, 2);
    var /= double(d);
    for (int64_t i = 0; i < d; ++i)
      out.f32()[r * d + i] = static_cast<float>(
          (x.f32()[r * d + i] - mean) / std::sqrt(var + eps) * gamma.f32()[i] + beta.f32()[i]);
  }
  return out;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool fuse_silu) {
  const int64_t B = x.dim(0), C = x.dim(1), S = x.numel() / (B * C), cpg = C / groups;
  Tensor out = Tensor::empty(x.shape());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      const float* src = x.f32() + (b * C + g * cpg) * S;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < cpg * S; ++i) mean += src[i];
      mean /= double(cpg * S);
      for (int64_t i = 0; i < cpg * S; ++i) var += std::pow(src[i] - mean, 2);
      var /= double(cpg * S);
      for (int64_t c = 0; c < cpg; ++c)
        for (int64_t i = 0; i < S; ++i) {
          const int64_t ch = g * cpg + c;
          double y =
              (src[c * S + i] - mean) / std::sqrt(var + eps) * gamma.f32()[ch] + beta.f32()[ch];
          if (fuse_silu) y = y / (1 + std::exp(-y));
          out.f32()[(b * C + ch) * S + i] = static_cast<float>(y);
        }
    }
  return out;
}

namespace {
template <typename F>
void map_(Tensor& x, F f) {
  require_f32_contiguous(x, "reference element-wise op");
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = static_cast<float>(f(double(x.f32()[i])));
}
double gelu_d(double v) {
  return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
}
}  // namespace

void silu_(Tensor& x) {
  map_(x, [](double v) { return v / (1 + std::exp(-v)); });
}
void gelu_(Tensor& x) {
  map_(x, gelu_d);
}
void quick_gelu_(Tensor& x) {
  map_(x, [](double v) { return v / (1 + std::exp(-1.702 * v)); });
}

Tensor geglu(const Tensor& x) {
  const int64_t d2 = x.dim(-1), d = d2 / 2, rows = x.numel() / d2;
  Shape s = x.shape();
  s[-1] = d;
  Tensor out = Tensor::empty(s);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < d; ++i)
      out.f32()[r * d + i] =
          static_cast<float>(x.f32()[r * d2 + i] * gelu_d(x.f32()[r * d2 + d + i]));
  return out;
}

void clamp_(Tensor& x, float lo, float hi) {
  map_(x, [lo, hi](double v) { return v < lo ? double(lo) : (v > hi ? double(hi) : v); });
}

void scale_(Tensor& x, float s) {
  require_f32_contiguous(x, "scale");
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] *= s;
}

void softmax_(Tensor& x) {
  require_f32_contiguous(x, "softmax");
  const int64_t d = x.dim(-1), rows = x.numel() / d;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x.f32() + r * d;
    double m = -INFINITY, sum = 0;
    // As std::fmax (a NaN is skipped), written as a comparison: GCC 12 for aarch64 crashes
    // vectorizing an fmax reduction of floats into a double.
    for (int64_t i = 0; i < d; ++i)
      if (double(row[i]) > m) m = row[i];
    for (int64_t i = 0; i < d; ++i) sum += std::exp(row[i] - m);
    for (int64_t i = 0; i < d; ++i) row[i] = static_cast<float>(std::exp(row[i] - m) / sum);
  }
}

void add_(Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    throw ShapeError("add: shapes " + a.shape().str() + " and " + b.shape().str());
  for (int64_t i = 0; i < a.numel(); ++i) a.f32()[i] += b.f32()[i];
}

void add_channel_bias_(Tensor& x, const Tensor& bias) {
  const int64_t B = x.dim(0), C = x.dim(1), S = x.numel() / (B * C);
  require_shape(bias, {B, C}, "channel bias");
  for (int64_t bc = 0; bc < B * C; ++bc)
    for (int64_t i = 0; i < S; ++i) x.f32()[bc * S + i] += bias.f32()[bc];
}

void add_broadcast_(Tensor& x, const Tensor& rows) {
  op_checks::broadcast_rows(x, rows);
  const int64_t n = rows.numel();
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] += rows.f32()[i % n];
}

void copy_(Tensor& dst, const Tensor& src) {
  if (dst.shape() != src.shape())
    throw ShapeError("copy: shapes " + dst.shape().str() + " and " + src.shape().str());
  for (int64_t i = 0; i < dst.numel(); ++i) dst.f32()[i] = src.f32()[i];
}

Tensor concat(const Tensor& a, const Tensor& b, int dim) {
  const Shape s = op_checks::concat(a, b, dim);
  Tensor out = Tensor::empty(s);
  int64_t inner = 1;
  for (int i = dim + 1; i < a.ndim(); ++i) inner *= a.dim(i);
  for (int64_t i = 0; i < out.numel(); ++i) {
    const int64_t outer = i / (inner * s[dim]), k = i / inner % s[dim], r = i % inner;
    out.f32()[i] = k < a.dim(dim) ? a.f32()[(outer * a.dim(dim) + k) * inner + r]
                                  : b.f32()[(outer * b.dim(dim) + k - a.dim(dim)) * inner + r];
  }
  return out;
}

Tensor repeat_batch(const Tensor& x, int64_t batch) {
  Shape s = x.shape();
  s[0] = batch;
  Tensor out = Tensor::empty(s);
  const int64_t one = x.numel() / x.dim(0);
  for (int64_t i = 0; i < out.numel(); ++i)
    out.f32()[i] = x.f32()[(i / one % x.dim(0)) * one + i % one];
  return out;
}

Tensor nchw_to_nlc(const Tensor& x) {
  const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2) * x.dim(3);
  Tensor out = Tensor::empty({B, L, C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) out.f32()[(b * L + l) * C + c] = x.f32()[(b * C + c) * L + l];
  return out;
}

Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w) {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  if (L != h * w) throw ShapeError("nlc_to_nchw: length " + std::to_string(L) + " != h*w");
  Tensor out = Tensor::empty({B, C, h, w});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) out.f32()[(b * C + c) * L + l] = x.f32()[(b * L + l) * C + c];
  return out;
}

Tensor embedding(const Tensor& ids, const Tensor& table) {
  if (ids.dtype() != DType::I64)
    throw ShapeError("embedding: ids must be I64, got " + ids.describe());
  const int64_t V = table.dim(0), D = table.dim(1);
  Shape s = ids.shape();
  s.push_back(D);
  Tensor out = Tensor::empty(s);
  const Weight rows(table);  // F32 copied, F16/BF16 widened exactly
  for (int64_t i = 0; i < ids.numel(); ++i) {
    const int64_t id = ids.data_as<int64_t>()[i];
    op_checks::index_in_range("embedding: token id", id, "vocabulary of", V);
    rows.widen_rows(id, id + 1, out.f32() + i * D);
  }
  return out;
}

Tensor select_tokens(const Tensor& x, const Tensor& positions) {
  op_checks::select_tokens(x, positions);
  const int64_t B = x.dim(0), L = x.dim(1), D = x.dim(2);
  Tensor out = Tensor::empty({B, D});
  for (int64_t b = 0; b < B; ++b) {
    const int64_t p = positions.data_as<int64_t>()[b];
    op_checks::index_in_range("select_tokens: position", p, "length", L);
    for (int64_t d = 0; d < D; ++d) out.f32()[b * D + d] = x.f32()[(b * L + p) * D + d];
  }
  return out;
}

Tensor evaluate(const Expr& e, const std::vector<Tensor>& inputs) {
  op_checks::evaluate(e, inputs);
  Tensor out = Tensor::empty(inputs[0].shape());
  std::vector<float> stack;
  for (int64_t i = 0; i < out.numel(); ++i) {
    stack.clear();
    for (const Expr::Instr& ins : e.code()) {
      using C = Expr::Code;
      switch (ins.code) {
        case C::Input:
          stack.push_back(inputs[static_cast<size_t>(ins.arg)].f32()[i]);
          break;
        case C::Constant:
          stack.push_back(ins.value);
          break;
        case C::Neg:
        case C::Exp:
        case C::Sqrt:
        case C::Abs:
          stack.back() = ops::apply_unary(ins.code, stack.back());
          break;
        case C::Fma:
        case C::Clamp: {
          const float c = stack.back();
          stack.pop_back();
          const float b = stack.back();
          stack.pop_back();
          stack.back() = ins.code == C::Fma ? std::fma(stack.back(), b, c)
                                            : ops::apply_clamp(stack.back(), b, c);
          break;
        }
        default: {
          const float b = stack.back();
          stack.pop_back();
          stack.back() = ops::apply_binary(ins.code, stack.back(), b);
        }
      }
    }
    out.f32()[i] = stack.back();
  }
  return out;
}

void dynamic_threshold_(Tensor& x, float ratio, float max_value) {
  const int64_t batch = x.ndim() > 0 ? x.dim(0) : 1;
  const int64_t per = batch > 0 ? x.numel() / batch : 0;
  for (int64_t b = 0; b < batch; ++b)
    ops::dynamic_threshold_item(x.f32() + b * per, per, ratio, max_value);
}

int64_t count_nonfinite(const Tensor& x) {
  int64_t bad = 0;
  for (int64_t i = 0; i < x.numel(); ++i) bad += std::isfinite(x.f32()[i]) ? 0 : 1;
  return bad;
}

// Every AttentionKernel is this one formula, in double; the kernels differ only in the CPU backend.
Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, int heads, bool causal,
                 WeightCompute compute, AttentionKernel) {
  const bool bf16 = compute == WeightCompute::BF16;
  const Tensor q = bf16 ? rounded_to_bf16(q_in) : q_in, k = bf16 ? rounded_to_bf16(k_in) : k_in,
               v = bf16 ? rounded_to_bf16(v_in) : v_in;
  const int64_t B = q.dim(0), Lq = q.dim(1), C = q.dim(2), Lk = k.dim(1), D = C / heads;
  Tensor out = Tensor::empty({B, Lq, C});
  const float *qp = q.f32(), *kp = k.f32(), *vp = v.f32();
  float* op = out.f32();
  std::vector<double> s(static_cast<size_t>(Lk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < Lk; ++j) {
          double dot = 0;
          for (int64_t t = 0; t < D; ++t)
            dot += double(qp[(b * Lq + i) * C + h * D + t]) * kp[(b * Lk + j) * C + h * D + t];
          s[size_t(j)] = (causal && j > i) ? -INFINITY : dot / std::sqrt(double(D));
          m = std::fmax(m, s[size_t(j)]);
        }
        for (int64_t j = 0; j < Lk; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - m));
        for (int64_t j = 0; j < Lk; ++j) {
          s[size_t(j)] /= sum;  // the probabilities; bf16 multiplies their bf16 roundings
          if (bf16) s[size_t(j)] = bf16_to_float(float_to_bf16(static_cast<float>(s[size_t(j)])));
        }
        for (int64_t t = 0; t < D; ++t) {
          double acc = 0;
          for (int64_t j = 0; j < Lk; ++j) acc += s[size_t(j)] * vp[(b * Lk + j) * C + h * D + t];
          op[(b * Lq + i) * C + h * D + t] = static_cast<float>(acc);
        }
      }
  return out;
}

const Backend& backend() {
  static const Backend table = DIFFUSE_BACKEND_TABLE("reference", kReference);
  return table;
}

}  // namespace diffuse::ref
